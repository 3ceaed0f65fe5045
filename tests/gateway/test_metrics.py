"""/metrics: behind its bearer token, and the series say what the ledger, the queues and the
devices hold, as a fan-out goes from approval to the outbox."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rq import SimpleWorker
from sqlalchemy import insert, update

from gateway.delivery import queues
from gateway.store import accounts, roster
from gateway.store.schema import areas, devices
from tests.conftest import run_jobs
from tests.gateway.conftest import AREAS, announcement, person
from tests.gateway.test_fanout import publish

pytestmark = pytest.mark.integration
TOKEN = "metrics-token-for-tests"


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url, METRICS_TOKEN=TOKEN)


def scrape(app) -> dict[tuple[str, tuple], float]:
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def series(values, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for (metric, labels), value in values.items()
            if metric == name}


def deliveries(values) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for (metric, labels), value in values.items():
        if metric == "tongbao_deliveries" and value:
            labels = dict(labels)
            found.setdefault(labels["channel"], {})[labels["status"]] = int(value)
    return found


def nonzero(status: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The status API's counts without its zeros."""
    return {channel: {s: n for s, n in counts.items() if n}
            for channel, counts in status.items() if any(counts.values())}


def test_metrics_need_the_token(make_app, tmp_path):
    off = make_app(f"sqlite:///{tmp_path / 'off.db'}")
    assert off.test_client().get("/metrics").status_code == 404
    on = make_app(f"sqlite:///{tmp_path / 'on.db'}", METRICS_TOKEN=TOKEN)
    client = on.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401


def test_the_series_follow_a_fan_out(app, api):
    values = scrape(app)
    assert series(values, "tongbao_source_up", "source") == {"database": 1, "redis": 1}
    assert series(values, "tongbao_devices", "state") == {"online": 0, "offline": 0, "unknown": 3}
    assert deliveries(values) == {}

    announcement_id = publish(api)
    time.sleep(1.1)
    values = scrape(app)
    assert series(values, "tongbao_queue_jobs", "queue")["plan"] == 1
    assert 1 <= series(values, "tongbao_queue_oldest_job_age_seconds", "queue")["plan"] < 30
    assert series(values, "tongbao_queue_oldest_job_age_seconds", "queue")["sms"] == 0

    with app.app_context():  # the plan job alone: deliveries queued, not yet sent
        SimpleWorker([queues.queue("plan")], connection=queues.connection()).work(burst=True)
    time.sleep(1.1)
    values = scrape(app)
    status = nonzero(api("admin").get(f"/api/v1/announcements/{announcement_id}").json["deliveries"])
    assert deliveries(values) == status
    assert {s for by_status in status.values() for s in by_status} == {"queued"}
    waiting = series(values, "tongbao_queue_jobs", "queue")
    assert waiting["plan"] == 0 and waiting["sms"] >= 1 and waiting["voice"] >= 1
    assert values[("tongbao_oldest_unsent_delivery_age_seconds", ())] >= 1

    run_jobs(app)
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(devices).where(devices.c.device_id == "spk-a").values(online=True))
        conn.execute(update(devices).where(devices.c.device_id == "spk-b").values(online=False))
    values = scrape(app)
    status = nonzero(api("admin").get(f"/api/v1/announcements/{announcement_id}").json["deliveries"])
    assert deliveries(values) == status
    assert "queued" not in {s for by_status in status.values() for s in by_status}
    assert values[("tongbao_oldest_unsent_delivery_age_seconds", ())] == 0
    assert set(series(values, "tongbao_queue_jobs", "queue").values()) == {0}
    assert series(values, "tongbao_devices", "state") == {"online": 1, "offline": 1, "unknown": 1}
    assert series(values, "tongbao_workers", "queue") == {name: 0 for name in queues.QUEUE_NAMES}
    # Every delivery was one send to the outbox, none failed.
    tried = series(values, "tongbao_provider_send_seconds_count", "channel")
    assert {channel: int(count) for channel, count in tried.items() if count} == {
        channel: sum(counts.values()) for channel, counts in status.items()}
    assert series(values, "tongbao_provider_errors_total", "channel") == {}


def test_provider_errors_and_rate_limit_waits_are_counted(make_app, database_url, twilio):
    app = make_app(database_url, METRICS_TOKEN=TOKEN, SMS_RATE=2,
                   TWILIO_ACCOUNT_SID=twilio.account_sid, TWILIO_AUTH_TOKEN=twilio.auth_token,
                   TWILIO_FROM_NUMBER="+15005550006", TWILIO_API_BASE=twilio.url)
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": c, "name": n} for c, n in AREAS])
        roster.insert_residents(conn, [
            person("甲", phone="+8613800000021"), person("乙", phone="+8613800000022"),
            person("丙", phone="+8613800000023"), person("丁", phone="+8613800000024"),
            person("无效", phone="+8613800000001")])  # the stand-in refuses it: 21211
        for name in ("author", "approver"):
            accounts.create_user(conn, name, name, f"{name}-password")
        tokens = {name: accounts.create_token(conn, name) for name in ("author", "approver")}
    client = app.test_client()
    created = client.post("/api/v1/announcements", json=announcement(channels=["sms"]),
                          headers={"Authorization": f"Bearer {tokens['author']}"})
    client.post(f"/api/v1/announcements/{created.json['id']}/approve",
                headers={"Authorization": f"Bearer {tokens['approver']}"})
    run_jobs(app)
    values = scrape(app)
    assert values[("tongbao_provider_errors_total", (("channel", "sms"), ("code", "21211")))] == 1
    assert series(values, "tongbao_provider_send_seconds_count", "channel")["sms"] == 5
    assert 0 < series(values, "tongbao_provider_send_seconds_sum", "channel")["sms"] < 10
    # Five sends at two a second: the last waits about two seconds for its turn.
    assert series(values, "tongbao_rate_limit_wait_seconds_total", "channel")["sms"] >= 1.5


def test_requests_are_counted_by_route_template_and_status(app):
    client = app.test_client()

    def answered(values, route: str, status: str) -> float:
        return values.get(("tongbao_http_requests_total",
                           (("method", "GET"), ("route", route), ("status", status))), 0)

    before = scrape(app)
    for announcement_id in (1, 2, 3):  # one series for every id
        client.get(f"/api/v1/announcements/{announcement_id}")
    client.get("/no/such/page")
    after = scrape(app)
    route = "/api/v1/announcements/<int:announcement_id>"
    assert answered(after, route, "401") - answered(before, route, "401") == 3
    assert answered(after, "unmatched", "404") - answered(before, "unmatched", "404") == 1
    timed = ("tongbao_http_request_seconds_count", (("route", route),))
    assert after[timed] - before.get(timed, 0) == 3


def test_an_unreachable_redis_shows_as_down_not_as_an_error(make_app, tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'x.db'}", METRICS_TOKEN=TOKEN,
                   REDIS_URL="redis://127.0.0.1:1/0")
    values = scrape(app)
    assert series(values, "tongbao_source_up", "source") == {"database": 1, "redis": 0}
    assert "tongbao_queue_jobs" not in {name for name, _ in values}


def test_multiprocess_mode_works_outside_gunicorn_too(tmp_path, redis_url):
    """With PROMETHEUS_MULTIPROC_DIR naming a folder nobody made (no gunicorn.conf.py to make
    it), requests are still answered and counted."""
    folder = tmp_path / "metrics"
    script = (
        "from gateway import create_app\n"
        "from gateway.store import db\n"
        "app = create_app()\n"
        "db.upgrade(app.extensions['engine'])\n"
        "client = app.test_client()\n"
        "assert client.get('/healthz').status_code == 200\n"
        "page = client.get('/metrics', headers={'Authorization': 'Bearer t'})\n"
        "print(page.status_code, page.get_data(as_text=True))\n")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "METRICS_TOKEN": "t",
             "TONGBAO_INSTANCE": str(tmp_path / "instance"), "REDIS_URL": redis_url,
             "DATABASE_URL": f"sqlite:///{tmp_path / 'tongbao.db'}"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("200 ")
    assert 'tongbao_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' \
        in result.stdout
    assert any(folder.glob("counter_*.db"))
