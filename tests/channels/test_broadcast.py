"""BroadcastChannel and WebhookChannel through their real HTTP code, against a local
broadcaster stand-in that checks the signature, the replay window and the document."""
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from channels.base import ChannelError, Outgoing
from channels.broadcast import BroadcastChannel, Destination, WebhookChannel, sign, verify
from messages import broadcast
from messages.gbt35965 import Codes, WarningDocument
from messages.render_types import RenderContext, Rendered
from tests.fakes.broadcaster_server import FakeBroadcaster

pytestmark = pytest.mark.integration
SECRET = "s3cret-shared-with-the-station"
NOTICE = SimpleNamespace(id=9, headline="山洪预警", body="请立即撤离。", instruction="", status="actual",
                         msg_type="alert", severity="severe", language="zh")
DOCUMENT = WarningDocument(9, datetime(2026, 7, 1, 2, 0, tzinfo=timezone.utc), "actual", "alert",
                           "县政府", "山洪", "immediate", "severe", "likely", "山洪预警",
                           "请立即撤离。", "zh", [("450702", "钦南区")])
RENDERED = broadcast.render_broadcast(NOTICE, DOCUMENT, Codes(), RenderContext())


@pytest.fixture
def station():
    server = FakeBroadcaster(SECRET).start()
    yield server
    server.stop()


def channel_for(cls, url, secret=SECRET, **settings):
    known = {"1": Destination(url + "/ingest", secret)}
    return cls({"destination": known.get, "timeout": 2, **settings})


def outgoing(rendered=RENDERED, address="1"):
    return Outgoing(delivery_id=41, announcement_id=9, address=address, rendered=rendered)


def test_the_document_crawl_and_script_arrive_signed_and_valid(station):
    receipt = channel_for(BroadcastChannel, station.url).send(outgoing())
    assert receipt.status == "delivered"
    [got] = station.received
    assert got.document.findtext("info/severity") == "Orange" and got.delivery == "41"
    assert got.crawl.startswith("【橙色预警】山洪预警") and "山洪预警" in got.script


def test_a_wrong_secret_is_refused_by_the_receiver_and_permanent(station):
    with pytest.raises(ChannelError) as caught:
        channel_for(BroadcastChannel, station.url, secret="another-secret-entirely").send(outgoing())
    assert caught.value.permanent and caught.value.code == "401"
    assert station.refused[0][0] == 401 and not station.received


def test_a_station_that_is_down_is_transient(station):
    station.down = True
    with pytest.raises(ChannelError) as caught:
        channel_for(BroadcastChannel, station.url).send(outgoing())
    assert not caught.value.permanent and caught.value.code == "503"


def test_an_unreachable_station_is_transient_and_a_removed_one_permanent(station):
    with pytest.raises(ChannelError) as unreachable:
        channel_for(BroadcastChannel, "http://127.0.0.1:9").send(outgoing())
    assert not unreachable.value.permanent
    with pytest.raises(ChannelError) as removed:
        channel_for(BroadcastChannel, station.url).send(outgoing(address="2"))
    assert removed.value.permanent and removed.value.code == "removed"


def test_the_webhook_posts_signed_json(station):
    hook = broadcast.render_webhook(NOTICE, RENDERED, DOCUMENT, cap_url="https://x/cap/9.xml",
                                    sms=Rendered("sms", "zh", "短信"))
    assert channel_for(WebhookChannel, station.url).send(outgoing(hook)).status == "delivered"
    [got] = station.received
    assert got.json["cap_url"] == "https://x/cap/9.xml" and got.json["delivery"] == 41
    assert got.json["notice"]["colour"] == "Orange"


def test_verify_refuses_a_replay_outside_the_window_and_a_changed_body():
    signature = sign(SECRET, "1000", b"body")
    assert verify(SECRET, "1000", b"body", signature, now=1200)
    assert not verify(SECRET, "1000", b"body", signature, now=1000 + 301)
    assert not verify(SECRET, "1000", b"body!", signature, now=1000)
    assert not verify(SECRET, "later", b"body", signature, now=1000)
