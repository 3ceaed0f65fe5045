"""A local stand-in for a broadcaster (TV station, traffic radio, the emergency broadcasting
platform) or a webhook receiver, checking what a real one would.

It serves ``POST /<path>`` on 127.0.0.1 (a free port) from a thread, and for each request
checks the ``X-Tongbao-Signature`` over the timestamp and raw body with the shared secret
and the timestamp against the replay window (401 when either fails, like a receiver that
follows docs/interop.md), then the body: a ``multipart/form-data`` with a ``document`` that
passes the GB/T 35965.1 schema, a ``crawl`` and a ``script`` (422 when not), or JSON for a
webhook. ``down`` makes it answer 503 (a station whose ingest is down) until it is cleared.
"""
from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from werkzeug.wrappers import Request, Response

from channels.broadcast import (DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
                                REPLAY_WINDOW_SECONDS, verify)
from messages import gbt35965
from tests.fakes.local_server import LocalServer


@dataclass(frozen=True)
class Received:
    path: str
    delivery: str
    document: ET.Element | None = None  # a broadcast's parsed GB/T document
    crawl: str = ""
    script: str = ""
    json: dict = field(default_factory=dict)  # a webhook's body


class FakeBroadcaster(LocalServer):
    def __init__(self, secret: str, *, window: float = REPLAY_WINDOW_SECONDS):
        self.secret, self.window = secret, window
        self.received: list[Received] = []
        self.refused: list[tuple[int, str]] = []
        self.down = False
        self.attempts_while_down = 0
        self.last_refused_at = 0.0  # time.time() of the latest attempt answered 503
        super().__init__()

    def answer(self, request: Request) -> Response:
        if self.down:
            with self._lock:
                self.attempts_while_down += 1
                self.last_refused_at = time.time()
            return Response("ingest down", status=503)
        body = request.get_data(cache=True)
        if not verify(self.secret, request.headers.get(TIMESTAMP_HEADER, ""), body,
                      request.headers.get(SIGNATURE_HEADER, ""), window=self.window):
            return self._refuse(401, "bad signature or stale timestamp")
        try:
            received = self._parse(request, body)
        except (ValueError, KeyError, gbt35965.DocumentError) as error:
            return self._refuse(422, str(error))
        with self._lock:
            self.received.append(received)
        return Response("ok", status=202)

    def _parse(self, request: Request, body: bytes) -> Received:
        delivery = request.headers.get(DELIVERY_HEADER, "")
        if request.mimetype == "application/json":
            return Received(request.path, delivery, json=json.loads(body))
        document = request.files["document"].read()
        gbt35965.check(document)
        return Received(request.path, delivery, ET.fromstring(document),
                        request.form["crawl"], request.form["script"])

    def _refuse(self, status: int, reason: str) -> Response:
        with self._lock:
            self.refused.append((status, reason))
        return Response(reason, status=status)
