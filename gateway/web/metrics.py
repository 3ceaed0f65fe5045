"""``GET /metrics`` for Prometheus, behind a bearer token (``METRICS_TOKEN``; unset: 404).

The pipeline's series are counted at each scrape (``gateway/delivery/metrics.py``). Under
gunicorn, values a process keeps itself are summed across its processes by prometheus_client's
multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` names a folder emptied at each start
(``gunicorn.conf.py`` drops a finished process's live gauges).
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from gateway.delivery.metrics import PipelineCollector

bp = Blueprint("metrics", __name__)


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
    registry.register(PipelineCollector(app))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
