"""/healthz and /readyz: ready only when the database, Redis, the broker, a worker per queue,
the scheduler and the signing key are there; not ready within seconds of one going away, and
ready again when it is back. Servers of the test's own (tests/drills/harness.py), never the
shared ones."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from channels.loudspeaker.protocol import SigningKey
from gateway import create_app
from gateway.delivery import health, queues
from gateway.store import db
from tests.drills.harness import (Mosquitto, PostgresDatabase, RedisServer, TcpProxy,
                                  flask_command, kill_group, wait_until)

ROOT = Path(__file__).resolve().parents[2]


def readiness(client) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get("/readyz")
    return response.status_code, response.get_json(), time.monotonic() - started


def failing(body: dict) -> set[str]:
    return {name for name, check in body["checks"].items() if not check["ok"]}


def test_healthz_answers_while_the_process_is_up(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": "sqlite:///:memory:",
                      "REDIS_URL": "redis://127.0.0.1:1/0", "TESTING": True})
    response = app.test_client().get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


@pytest.fixture
def silent_port():
    """A port that takes connections and never says a word (a hung server)."""
    server = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield server.getsockname()[1]
    server.close()


def test_readyz_never_hangs_and_shows_no_secret(tmp_path, silent_port):
    app = create_app({"INSTANCE_PATH": str(tmp_path), "TESTING": True,
                      "DATABASE_URL": f"postgresql://tongbao:db-secret@127.0.0.1:{silent_port}/x",
                      "REDIS_URL": f"redis://:redis-secret@127.0.0.1:{silent_port}/0",
                      "MQTT_URL": f"mqtt://tongbao-gateway:mqtt-secret@127.0.0.1:{silent_port}",
                      "SECRET_KEY": "session-secret"})
    status, body, took = readiness(app.test_client())
    assert status == 503 and body["status"] == "not ready"
    assert took < health.CHECK_SECONDS + 1
    assert failing(body) == {"database", "redis", "broker", "workers", "scheduler",
                             "signing_key"}
    assert body["checks"]["database"]["detail"] == "no answer within 2 s"
    text = str(body)
    for secret in ("db-secret", "redis-secret", "mqtt-secret", "session-secret"):
        assert secret not in text
    assert "fix" in body["checks"]["signing_key"]


@pytest.mark.integration
@pytest.mark.slow
def test_readyz_follows_redis_the_database_and_the_broker(tmp_path):
    redis_server = RedisServer(str(tmp_path / "redis")).start()
    broker = Mosquitto(str(tmp_path / "mqtt")).start()
    database = PostgresDatabase()
    proxy = TcpProxy(5432)  # the web process reaches PostgreSQL through it: cut to stop it
    worker = None
    try:
        instance = tmp_path / "instance"
        app = create_app({"INSTANCE_PATH": str(instance), "TESTING": True,
                          "DATABASE_URL": database.url_via(proxy.port),
                          "REDIS_URL": redis_server.url, "MQTT_URL": broker.url})
        db.upgrade(app.extensions["engine"])
        client = app.test_client()
        status, body, _ = readiness(client)
        assert status == 503 and failing(body) == {"workers", "scheduler", "signing_key"}

        SigningKey.load_or_create(app.config["SIGNING_KEY_PATH"])
        log = open(tmp_path / "worker.log", "w")
        worker = subprocess.Popen(
            flask_command("worker"), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "TONGBAO_INSTANCE": str(instance), "DATABASE_URL": database.url,
                 "REDIS_URL": redis_server.url, "MQTT_URL": broker.url,
                 "STALE_SENDING_SECONDS": "4"})
        wait_until(lambda: readiness(client)[0] == 200, 30, "ready with a worker")
        status, body, _ = readiness(client)
        assert body["status"] == "ready"
        assert body["checks"]["workers"]["detail"] == "live workers per queue: " + ", ".join(
            f"{queue}: 1" for queue in queues.QUEUE_NAMES)

        def goes_down_and_back(stop, start, check: str) -> None:
            stop()
            status, body, _ = wait_until(lambda: (answer := readiness(client))[0] == 503
                                         and answer, 5, f"not ready without {check}")
            assert check in failing(body)
            for _ in range(3):  # and stays so, each answer within the bound
                status, body, took = readiness(client)
                assert status == 503 and check in failing(body) and took < 3
            start()
            try:
                wait_until(lambda: readiness(client)[0] == 200, 40, f"ready with {check} back")
            except AssertionError:
                print(readiness(client)[1], (tmp_path / "worker.log").read_text()[-3000:])
                raise

        goes_down_and_back(redis_server.kill, redis_server.start, "redis")
        goes_down_and_back(proxy.refuse, proxy.allow, "database")
        goes_down_and_back(broker.kill, broker.start, "broker")
    finally:
        if worker is not None:
            kill_group(worker)
            worker.wait()
        proxy.close()
        broker.stop()
        redis_server.stop()
        database.drop()
