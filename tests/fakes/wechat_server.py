"""A local stand-in for the WeChat and WeCom APIs, speaking their real shapes.

It serves ``GET /cgi-bin/token``, ``POST /cgi-bin/message/template/send`` and
``POST /cgi-bin/webhook/send`` on 127.0.0.1 (a free port) from a thread. Like WeChat it
answers errors with HTTP 200 and an ``errcode`` in the body. Tests configure which openids
and robot keys fail and how, count token fetches, read every request it received, retire
the current access token, and stall sends to exercise timeouts.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

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
    47003: "argument invalid! data.thing1.value invalid",
    93000: "invalid webhook url",
}


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
        self.token_fetches = 0
        self.received: list[Received] = []
        self._valid_tokens: set[str] = set()
        self._msgids = itertools.count(200228332)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
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
        self._server.shutdown()
        self._server.server_close()

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
        openid = (request.body or {}).get("touser", "")
        if openid in self.openid_errors:
            return _error(self.openid_errors[openid])
        return {"errcode": 0, "errmsg": "ok", "msgid": next(self._msgids)}

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


def _error(errcode: int) -> dict:
    return {"errcode": errcode, "errmsg": f"{ERRMSGS.get(errcode, 'error')} rid: fake"}
