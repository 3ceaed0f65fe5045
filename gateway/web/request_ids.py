"""A request id per web request: the caller's ``X-Request-ID`` when it is a sane one (a proxy's,
a partner's), else one made here; answered in the response's ``X-Request-ID``, on every log line
of the request, in the jobs it queues (``gateway.delivery.queues``) and so on their lines too.

Each request is logged once when it is answered (method, path without its query, status,
milliseconds): the access log, in the gateway's own format. Probes (``/healthz``, ``/readyz``,
``/metrics``) are logged at DEBUG, so a scrape every 15 s does not bury the rest.
"""
from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from gateway import logs

HEADER = "X-Request-ID"
#: What a caller's request id may be: a UUID, a proxy's hex, ``partner-2026-0001``.
SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
PROBES = ("/healthz", "/readyz", "/metrics")
log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_answered)
    app.teardown_request(_end)


def _begin() -> None:
    given = request.headers.get(HEADER, "")
    g.request_id = given if SANE.fullmatch(given) else uuid.uuid4().hex
    g.request_started = time.monotonic()
    g.request_log_token = logs.bind(request_id=g.request_id,
                                    announcement_id=(request.view_args or {}).get("announcement_id"))


def _answered(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:  # a request turned away before any before_request ran
        return response
    response.headers[HEADER] = request_id
    milliseconds = round((time.monotonic() - g.request_started) * 1000)
    log.log(logging.DEBUG if request.path in PROBES else logging.INFO, "%s %s %s %d ms",
            request.method, request.path, response.status_code, milliseconds)
    return response


def _end(_error: BaseException | None) -> None:
    token = g.pop("request_log_token", None)
    if token is not None:
        logs.unbind(token)
