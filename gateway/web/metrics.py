"""``GET /metrics`` for Prometheus, behind a bearer token (``METRICS_TOKEN``; unset: 404).

The pipeline's series are counted at each scrape (``gateway/delivery/metrics.py``). The web
process also counts the requests it answers (``tongbao_http_requests_total`` and
``tongbao_http_request_seconds``, by route template, method and status). Under gunicorn those
live in each process: with ``PROMETHEUS_MULTIPROC_DIR`` set (a folder emptied at each start by
``gunicorn.conf.py``, which also drops a finished process's live gauges), prometheus_client
keeps them in files there and a scrape answered by any process sums them all.
"""
from __future__ import annotations

import hmac
import os
import time

from flask import Blueprint, Response, abort, current_app, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest)
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.delivery.metrics import PipelineCollector

bp = Blueprint("metrics", __name__)

# Not in prometheus_client's global registry: /metrics puts them in its own, or reads them
# from the multiprocess folder.
REQUESTS = Counter("tongbao_http_requests", "Requests answered, by route, method and status",
                   ["route", "method", "status"], registry=None)
DURATION = Histogram("tongbao_http_request_seconds", "Seconds to answer a request, by route",
                     ["route"], registry=None,
                     buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


@bp.record_once
def _multiprocess_folder(state) -> None:
    """prometheus_client writes there from the first request counted: it must exist even
    where gunicorn.conf.py did not make it (``flask serve``, another WSGI server)."""
    folder = state.app.config["PROMETHEUS_MULTIPROC_DIR"]
    if folder:
        os.makedirs(folder, mode=0o700, exist_ok=True)


@bp.before_app_request
def _started() -> None:
    g.metrics_started = time.perf_counter()


@bp.after_app_request
def _count(response: Response) -> Response:
    # The route's template (/api/v1/announcements/<int:announcement_id>), never the path
    # itself: ids and garbage would make a series each.
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    REQUESTS.labels(route, request.method, str(response.status_code)).inc()
    if "metrics_started" in g:
        DURATION.labels(route).observe(time.perf_counter() - g.metrics_started)
    return response


@bp.get("/metrics")
def metrics():
    app = current_app._get_current_object()
    token = app.config["METRICS_TOKEN"]
    if not token:
        abort(404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response("a bearer token (METRICS_TOKEN) is needed\n", 401,
                        {"WWW-Authenticate": 'Bearer realm="metrics"'}, mimetype="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    if app.config["PROMETHEUS_MULTIPROC_DIR"]:
        MultiProcessCollector(registry, path=app.config["PROMETHEUS_MULTIPROC_DIR"])
    else:
        registry.register(REQUESTS)
        registry.register(DURATION)
    registry.register(PipelineCollector(app))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
