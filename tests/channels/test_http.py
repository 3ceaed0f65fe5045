"""A provider's HTTP session reads the proxy and CA settings of the environment once, when the
channel is built (a destination's proxy, the first time its origin is seen), not on every
send (``channels.http``)."""
import http.server
import threading

import pytest

from channels.base import Outgoing
from channels.broadcast import BroadcastChannel, Destination
from channels.http import provider_session
from channels.twilio_sms import TwilioSmsChannel
from messages.render import Rendered
from tests.channels.test_broadcast import RENDERED, outgoing

pytestmark = pytest.mark.integration

PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                   "all_proxy", "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class Recorder(http.server.ThreadingHTTPServer):
    """An HTTP server (a forward proxy, or a provider) noting each request line's target."""

    def __init__(self):
        self.targets: list[str] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                recorder.targets.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def clean_environment(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _serving():
    server = Recorder()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy():
    yield from _serving()


@pytest.fixture
def provider():
    yield from _serving()


def test_the_proxy_set_when_the_session_is_made_is_used_and_kept(clean_environment, proxy):
    clean_environment.setenv("HTTP_PROXY", proxy.url)
    session = provider_session("http://provider.example")
    clean_environment.delenv("HTTP_PROXY")  # read once: a later change needs a restart

    assert session.get("http://provider.example/v1/send", timeout=5).text == "ok"
    assert proxy.targets == ["http://provider.example/v1/send"]


def test_an_origin_in_no_proxy_is_reached_directly(clean_environment, proxy, provider):
    clean_environment.setenv("HTTP_PROXY", proxy.url)
    clean_environment.setenv("NO_PROXY", "127.0.0.1")
    session = provider_session(provider.url)

    session.get(provider.url + "/v1/send", timeout=5)
    assert (proxy.targets, provider.targets) == ([], ["/v1/send"])


def test_a_ca_bundle_named_in_the_environment_is_the_sessions(clean_environment, tmp_path):
    bundle = tmp_path / "county-ca.pem"
    clean_environment.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert provider_session("https://api.weixin.qq.com").verify == str(bundle)
    clean_environment.delenv("REQUESTS_CA_BUNDLE")
    assert provider_session("https://api.weixin.qq.com").verify is True


def test_a_twilio_send_does_not_read_a_proxy_set_after_the_channel_was_built(
        clean_environment, twilio):
    channel = TwilioSmsChannel({**twilio.settings, "from_number": "+15005550006", "timeout": 2})
    clean_environment.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    clean_environment.setenv("ALL_PROXY", "http://127.0.0.1:9")
    try:
        receipt = channel.send(Outgoing(delivery_id=41, announcement_id=7,
                                        address="+8613912345678",
                                        rendered=Rendered("sms", "zh", "【县人民政府】演练")))
    finally:
        channel.close()

    assert receipt.provider_id.startswith("SM")
    assert len(twilio.requests) == 1


def test_a_destination_is_posted_to_through_its_origins_proxy_read_once(clean_environment, proxy,
                                                                        provider):
    clean_environment.setenv("HTTP_PROXY", proxy.url)
    clean_environment.setenv("NO_PROXY", "127.0.0.1")
    known = {"1": Destination("http://station.example/ingest", "s" * 32),
             "2": Destination(provider.url + "/ingest", "s" * 32)}
    channel = BroadcastChannel({"destination": known.get, "timeout": 2})
    try:
        assert channel.send(outgoing(RENDERED, "1")).status == "delivered"
        assert channel.send(outgoing(RENDERED, "2")).status == "delivered"  # in NO_PROXY
        clean_environment.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        assert channel.send(outgoing(RENDERED, "1")).status == "delivered"
    finally:
        channel.close()

    assert proxy.targets == ["http://station.example/ingest"] * 2
    assert provider.targets == ["/ingest"]
