"""A local stand-in for the Weibo open API's statuses/share, speaking its shapes.

``POST /2/statuses/share.json`` (form: ``access_token``, ``status``, ``rip``) on 127.0.0.1 (a
free port), from a thread. Like Weibo it refuses a status over 140 characters (20012), one
without a URL of the bound domain (10017), one repeating the last post (20019), a ``#topic#``
(10017), a wrong token (21332); ``fail_with`` makes the next posts fail with a given
error code. Posts are kept in ``posts``.
"""
from __future__ import annotations

import itertools
import json

from werkzeug.wrappers import Request, Response

from tests.fakes.local_server import LocalServer

ERRORS = {10002: "Service unavailable", 10017: "Parameter's value invalid",
          10023: "User requests out of rate limit", 20012: "Text too long",
          20019: "Repeat content", 21327: "expired_token", 21332: "invalid_access_token"}


class FakeWeibo(LocalServer):
    def __init__(self, token: str, domain: str, limit: int = 140):
        self.token, self.domain, self.limit = token, domain, limit
        self.posts: list[str] = []
        self.fail_with: list[int] = []
        self._ids = itertools.count(4_800_000_000_000_000)
        super().__init__()

    def answer(self, request: Request) -> Response:
        if request.path != "/2/statuses/share.json" or request.method != "POST":
            return Response("not found", status=404)
        return self._share(request.form)

    def _share(self, form) -> Response:
        status = form.get("status", "")
        with self._lock:
            code = self.fail_with.pop(0) if self.fail_with else self._check(form, status)
            if code:
                return _error(code)
            self.posts.append(status)
            post_id = next(self._ids)
        return Response(json.dumps({"id": post_id, "idstr": str(post_id), "text": status}),
                        mimetype="application/json")

    def _check(self, form, status: str) -> int:
        if form.get("access_token") != self.token:
            return 21332
        if not form.get("rip"):
            return 10017
        if len(status) > self.limit:
            return 20012
        if self.domain not in status or "#" in status:
            return 10017
        if self.posts and self.posts[-1] == status:
            return 20019
        return 0


def _error(code: int) -> Response:
    body = {"request": "/2/statuses/share.json", "error_code": code, "error": ERRORS.get(code, "")}
    return Response(json.dumps(body), status=500 if code == 10002 else 400,
                    mimetype="application/json")
