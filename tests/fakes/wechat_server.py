"""A local stand-in for the WeChat and WeCom APIs, speaking their real shapes.

It serves ``GET /cgi-bin/token``, ``POST /cgi-bin/message/template/send`` and
``POST /cgi-bin/webhook/send`` on 127.0.0.1 (a free port) from a thread. Like WeChat it
answers errors with HTTP 200 and an ``errcode`` in the body. Tests configure which openids
and robot keys fail and how, count token fetches, read every request it received, retire
the current access token, and stall sends to exercise timeouts. Like WeChat it keeps a
client's connection open between requests (``connections`` counts those accepted).

Like WeChat it honours a template send's ``client_msg_id``: for the same openid and
``client_msg_id`` within ten minutes only one message reaches the resident (``shown``), and
the repeat is answered with the first one's msgid (or, with ``repeat_errcode``, with that
errcode and the first one's ``msg_id``, as the mass-send API answers). ``reply_delay`` makes it show the message
and only then wait before answering, as when an answer is lost to a timeout.
``account_error`` makes every template send fail with an account-level errcode.
``job_finish_event`` writes the ``TEMPLATESENDJOBFINISH`` event WeChat pushes to the
account's callback URL once it knows the message's fate, and ``signed_query`` the query
WeChat signs it with.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from xml.sax.saxutils import escape
from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from tests.fakes.local_server import KeepAliveServer

ERRMSGS = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40013: "invalid appid",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    45065: "clientmsgid exist",
    47003: "argument invalid! data.thing1.value invalid",
    48001: "api unauthorized",
    93000: "invalid webhook url",
}


GUARD_SECONDS = 600  # how long WeChat honours a client_msg_id


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict
    body: dict | None


class FakeWechat:
    def __init__(self, app_id: str = "wx-test-app", app_secret: str = "test-secret",
                 expires_in: int = 7200):
        self.app_id, self.app_secret, self.expires_in = app_id, app_secret, expires_in
        self.openid_errors: dict[str, int] = {
            "o-not-follower": 43004, "o-invalid": 40003, "o-busy": -1, "o-quota": 45009}
        self.robot_keys: set[str] = {"robot-key-1", "robot-key-2"}
        self.robot_errors: dict[str, int] = {"robot-busy": 45009}
        self.token_delay = 0.0  # seconds the token endpoint takes, to widen a race
        self.stall_sends = False  # template sends and robot posts hang until stop()
        self.reply_delay = 0.0  # seconds a template send waits, message shown, before answering
        self.account_error: int | None = None  # errcode of every template send
        self.token_error: int | None = None  # errcode of every token request
        self.repeat_errcode: int | None = None  # answer a repeated client_msg_id with this
        self.shown: list[dict] = []  # the template messages that reached a resident
        self._guards: dict[tuple[str, str], tuple[int, float]] = {}  # → (msgid, when)
        self.token_fetches = 0
        self.received: list[Received] = []
        self._valid_tokens: set[str] = set()
        self._msgids = itertools.count(200228332)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = KeepAliveServer("127.0.0.1", 0, self._app)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> "FakeWechat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.stop()

    @property
    def connections(self) -> int:
        """Client connections accepted so far: one per client that keeps its connection open."""
        return self._server.connections

    def invalidate_tokens(self) -> None:
        """Retire every token issued so far, as WeChat does when it rotates one."""
        with self._lock:
            self._valid_tokens.clear()

    def requests_to(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    @Request.application
    def _app(self, request: Request) -> Response:
        received = Received(request.method, request.path, dict(request.args),
                            request.get_json(silent=True))
        with self._lock:
            self.received.append(received)
        routes = {
            ("GET", "/cgi-bin/token"): self._token,
            ("POST", "/cgi-bin/message/template/send"): self._template_send,
            ("POST", "/cgi-bin/webhook/send"): self._robot_send,
        }
        handler = routes.get((request.method, request.path))
        if handler is None:
            return Response("not found", status=404)
        return Response(json.dumps(handler(received), ensure_ascii=False),
                        content_type="application/json; charset=utf-8")

    def _token(self, request: Received) -> dict:
        time.sleep(self.token_delay)
        if self.token_error is not None:
            return _error(self.token_error)
        if request.query.get("appid") != self.app_id:
            return _error(40013)
        if request.query.get("secret") != self.app_secret:
            return _error(40125)
        with self._lock:
            self.token_fetches += 1
            token = f"ACCESS_TOKEN_{self.token_fetches}"
            self._valid_tokens.add(token)
        return {"access_token": token, "expires_in": self.expires_in}

    def _template_send(self, request: Received) -> dict:
        self._stall_if_asked()
        if request.query.get("access_token") not in self._valid_tokens:
            return _error(40001)
        if self.account_error is not None:
            return _error(self.account_error)
        body = request.body or {}
        openid = body.get("touser", "")
        if openid in self.openid_errors:
            return _error(self.openid_errors[openid])
        guard = (openid, body.get("client_msg_id") or "")
        with self._lock:
            first = self._guards.get(guard) if guard[1] else None
            if first is not None and time.monotonic() - first[1] < GUARD_SECONDS:
                if self.repeat_errcode is not None:
                    return {**_error(self.repeat_errcode), "msg_id": first[0]}
                msgid = first[0]
            else:
                msgid = next(self._msgids)
                self.shown.append({**body, "msgid": msgid})
                if guard[1]:
                    self._guards[guard] = (msgid, time.monotonic())
        if self.reply_delay:
            self._stopping.wait(timeout=self.reply_delay)
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def _robot_send(self, request: Received) -> dict:
        self._stall_if_asked()
        key = request.query.get("key", "")
        if key in self.robot_errors:
            return _error(self.robot_errors[key])
        if key not in self.robot_keys:
            return _error(93000)
        return {"errcode": 0, "errmsg": "ok"}

    def _stall_if_asked(self) -> None:
        if self.stall_sends:
            self._stopping.wait(timeout=30)


def job_finish_event(msgid: int | str, openid: str, status: str = "success",
                     account: str = "gh_fake_account") -> str:
    """The XML WeChat pushes when a template message's fate is known (plaintext mode).

    ``status``: ``success``, ``failed:user block`` or ``failed: system failed``.
    """
    return (f"<xml><ToUserName><![CDATA[{account}]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>"
            f"<MsgID>{escape(str(msgid))}</MsgID>"
            f"<Status><![CDATA[{status}]]></Status></xml>")


def signed_query(token: str, timestamp: str | None = None, nonce: str = "1714036504") -> dict:
    """The query WeChat adds to every request to the callback URL: signature =
    sha1 of token, timestamp and nonce, sorted and joined."""
    timestamp = timestamp or str(int(time.time()))
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


def _error(errcode: int) -> dict:
    return {"errcode": errcode, "errmsg": f"{ERRMSGS.get(errcode, 'error')} rid: fake"}
