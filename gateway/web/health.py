"""``/healthz`` (the process answers) and ``/readyz`` (it can deliver), for load balancers,
systemd and monitoring. No login: they say nothing about people, and no address or secret."""
from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, current_app, jsonify

from gateway.delivery import health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    checks = health.run(current_app._get_current_object())
    ready = all(check.ok for check in checks)
    body = {"status": "ready" if ready else "not ready",
            "checks": {check.name: {key: value for key, value in asdict(check).items()
                                    if key != "name" and (key != "fix" or value)}
                       for check in checks}}
    response = jsonify(body)
    response.status_code = 200 if ready else 503
    response.headers["Cache-Control"] = "no-store"
    return response
