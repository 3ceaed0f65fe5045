"""The drill harness itself: each fault does what the drills rely on, and ends."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from channels.twilio_common import build_client, channel_error
from tests.drills.harness import (POSTGRES_PORT, Mosquitto, PostgresDatabase, PostgresServer,
                                  RedisServer, Supervised, TcpProxy, port_open, wait_until)
from tests.drills.network import Network
from tests.fakes.twilio_process import TwilioStandIn

pytestmark = pytest.mark.integration


def test_twilio_stand_in_switches_modes_and_counts_per_number(tmp_path):
    with TwilioStandIn(str(tmp_path / "twilio.log")) as twilio:
        client = build_client({"account_sid": twilio.env["TWILIO_ACCOUNT_SID"],
                               "auth_token": twilio.env["TWILIO_AUTH_TOKEN"],
                               "api_base": twilio.url, "timeout": 3})

        def send(to: str) -> str:
            try:
                client.messages.create(to=to, body="演练", from_=twilio.env["TWILIO_FROM_NUMBER"])
            except Exception as error:  # noqa: BLE001 - the outcome is what is compared
                return channel_error(error).code
            return "ok"

        assert [send("+8613900000001") for _ in range(2)] == ["ok", "ok"]
        twilio.set_mode("error")
        assert send("+8613900000002") == "20500"
        twilio.set_mode("random", fraction=0.3, seed=3)
        outcomes = [send("+8613900000003") for _ in range(40)]
        assert 4 <= outcomes.count("20500") <= 20 and set(outcomes) == {"ok", "20500"}
        twilio.set_mode("slow", delay=1)
        started = time.monotonic()
        assert send("+8613900000004") == "ok" and time.monotonic() - started >= 1
        twilio.set_mode("down")
        assert send("+8613900000005") == "connect"
        twilio.set_mode("normal")
        assert send("+8613900000005") == "ok"
        received = twilio.received()
        assert received["+8613900000001"] == 2 and received["+8613900000002"] == 0
        assert received["+8613900000003"] == outcomes.count("ok")
        assert twilio.state()["errors_answered"] == 1 + outcomes.count("20500")
        accepted = sum(received.values())
        rate = twilio.rate()  # messages answered 201 only
        assert rate["by_source"] == {"127.0.0.1": accepted}
        assert sum(rate["per_second"].values()) == accepted
        assert 1 <= rate["busiest_second"] < accepted  # the slow send put a second between them


def test_redis_killed_comes_back_empty_on_the_same_port(tmp_path):
    server = RedisServer(str(tmp_path / "redis")).start()
    try:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        client.set("key", "value")
        server.kill()
        with pytest.raises(redis.ConnectionError):
            client.get("key")
        server.start()
        assert client.get("key") is None
    finally:
        server.stop()


def test_postgres_proxy_refuses_and_cuts_then_lets_through_again():
    database = PostgresDatabase()
    proxy = TcpProxy(POSTGRES_PORT)
    engine = create_engine(database.url_via(proxy.port).replace("postgresql://",
                                                                "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            proxy.refuse()
            with pytest.raises(OperationalError):
                conn.execute(text("SELECT 1"))
        with pytest.raises(OperationalError, match="refused"):
            engine.connect()
        proxy.allow()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
        proxy.close()
        database.drop()


def test_mosquitto_killed_and_restarted(tmp_path):
    broker = Mosquitto(str(tmp_path / "mosquitto")).start()
    try:
        broker.kill()
        assert not port_open(broker.port)
        broker.start()
        assert port_open(broker.port)
    finally:
        broker.stop()


def test_supervisor_restarts_what_exits_and_stops_for_good(tmp_path):
    process = Supervised("sleeper", ["sleep", "30"], {"PATH": "/usr/bin:/bin"}, str(tmp_path),
                         restart_after=0.2).start()
    first = process.pid
    process.kill()
    wait_until(lambda: process.pid not in (None, first), 5, "a new sleeper")
    process.stop()
    assert [code for _, code in process.exits] == [-9, -9] and process.pid is None


def test_the_drill_network_joins_hosts_cuts_one_and_leaves_nothing_behind():
    reason = Network.unavailable()
    if reason:
        pytest.skip(reason)
    lan = Network(["services", "worker"])
    with lan:
        server = subprocess.Popen([*lan.launcher("services"), sys.executable, "-m", "http.server",
                                   "--bind", lan.address("services"), "8000"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            wait_until(lambda: port_open(8000, lan.address("services")), 10, "the server")

            def worker_reaches_it() -> bool:
                return subprocess.run([*lan.launcher("worker"), sys.executable, "-c",
                                       "import socket; socket.create_connection("
                                       f"('{lan.address('services')}', 8000), timeout=2)"],
                                      capture_output=True).returncode == 0

            assert worker_reaches_it()
            assert not port_open(8000)  # on the services host only, not this machine's loopback
            lan.cut("worker")
            assert not worker_reaches_it()
        finally:
            server.kill()
            server.wait()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert lan.prefix not in listed
    assert lan.own_link not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout


def test_a_postgresql_cluster_of_the_drills_own_starts_and_goes_away():
    server = PostgresServer(settings={"tcp_user_timeout": "10000"})
    try:
        server.start()
        assert server.port != POSTGRES_PORT
        database = PostgresDatabase(server)
        engine = create_engine(database.url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            assert conn.execute(text("SHOW tcp_user_timeout")).scalar() == "10000"  # ms
        engine.dispose()
        database.drop()
    finally:
        server.stop()
    assert not os.path.exists(server.directory)
