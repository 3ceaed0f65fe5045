"""The worker process: its name, its heartbeat and leases, and stopping when asked."""
from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from rq.scheduler import RQScheduler
from sqlalchemy import select

from gateway.delivery import health, queues, workers
from gateway.store import ledger
from gateway.store.db import as_utc, utcnow
from gateway.store.schema import deliveries
from tests.conftest import run_jobs
from tests.drills.harness import wait_until
from tests.gateway.delivery.conftest import planned

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]


def test_the_process_name_is_one_per_process():
    first = workers.process_name()
    assert workers.process_name() == first and str(os.getpid()) in first
    child = subprocess.run([sys.executable, "-c", "from gateway.delivery import workers; "
                            "print(workers.process_name())"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert child and child != first


def claimed_rows(app, count: int, *, owner: str, lease: timedelta) -> list[int]:
    with app.extensions["engine"].begin() as conn:
        ledger.ensure_counts(conn, 1, ["sms"])
        ledger.add(conn, 1, [{"channel": "sms", "recipient_id": i, "address": f"+86138{i:08d}",
                              "language": "zh", "batch": 0} for i in range(count)])
        return [row.id for row in ledger.claim(conn, 1, "sms", batch=0, owner=owner, lease=lease)]


def lease_ends(app, ids) -> dict[int, object]:
    with app.extensions["engine"].connect() as conn:
        return {row.id: as_utc(row.lease_until) for row in conn.execute(
            select(deliveries.c.id, deliveries.c.lease_until).where(deliveries.c.id.in_(ids)))}


def test_the_heartbeat_shows_the_worker_alive_and_renews_only_what_it_holds(make_app,
                                                                            database_url):
    app = make_app(database_url, STALE_SENDING_SECONDS=2, RECONCILE_SECONDS=3600)
    held, let_go = claimed_rows(app, 2, owner=workers.process_name(),
                                lease=timedelta(seconds=2))
    workers.hold([held])
    heartbeat = workers.Heartbeat(app, ["sms", "voice"])
    heartbeat.start()
    try:
        time.sleep(3)  # past the lease given at the claim
        with app.app_context():
            assert queues.worker_alive(workers.process_name())
            assert health.live_workers(queues.connection()) == {
                name: int(name in ("sms", "voice")) for name in queues.QUEUE_NAMES}
        ends = lease_ends(app, [held, let_go])
        assert ends[held] > utcnow() > ends[let_go]
    finally:
        heartbeat.stop()
        heartbeat.join(5)
        workers.let_go([held])
    with app.app_context():
        time.sleep(1.6)  # the heartbeat key lasts three beats (0.5 s each here)
        assert not queues.worker_alive(workers.process_name())


def test_abandoned_rows_are_released_for_the_reconciler(make_app, database_url):
    app = make_app(database_url)
    ids = claimed_rows(app, 3, owner=workers.process_name(), lease=timedelta(seconds=-1))
    with app.app_context():
        workers.abandon(ids)
        with app.extensions["engine"].begin() as conn:
            taken = ledger.reclaim_abandoned(conn, lambda owner: True)  # even "alive"
    assert taken == {(1, "sms"): 3}


def test_a_worker_stops_when_told_and_does_not_come_back(app, redis_url, tmp_path):
    environment = {**os.environ, "DATABASE_URL": app.config["DATABASE_URL"],
                   "REDIS_URL": redis_url, "TONGBAO_INSTANCE": str(tmp_path / "instance")}
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
                              cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        with app.app_context():
            deadline = time.monotonic() + 60
            while not any(queues.connection().scan_iter("tongbao:worker:*")):
                assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "the worker's heartbeat never showed"
                time.sleep(0.2)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def test_a_worker_told_to_stop_after_its_redis_is_gone_stops(app, tmp_path):
    redis_port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("redis-server")), "--port",
                               str(redis_port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL,
                              start_new_session=True)
    environment = {**os.environ, "DATABASE_URL": app.config["DATABASE_URL"],
                   "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                   "TONGBAO_INSTANCE": str(tmp_path / "instance")}
    worker = None
    try:
        connection = redis.Redis(port=redis_port)
        wait(lambda: _answers(connection), "the test's Redis")
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
                                  cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        wait(lambda: any(connection.scan_iter("tongbao:worker:*")), "the worker's heartbeat")
        server.kill()
        server.wait()
        time.sleep(1)  # the worker meets the closed connection
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        for process in (worker, server):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(connection) -> bool:
    try:
        return bool(connection.ping())
    except redis.RedisError:
        return False


def wait(predicate, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"{what} never showed"
        time.sleep(0.2)


def test_the_heartbeat_takes_over_the_scheduler_of_a_dead_worker(make_app, database_url):
    app = make_app(database_url, STALE_SENDING_SECONDS=2)
    with app.app_context():
        connection = queues.connection()
        locks = [RQScheduler.get_locking_key(name) for name in queues.QUEUE_NAMES]
        for key in locks:  # a killed worker's scheduler still holds every queue, a second left
            connection.set(key, "killed-workers-scheduler", px=1000)
        worker = workers.GatewayWorker([queues.queue(name) for name in queues.QUEUE_NAMES],
                                       connection=connection, name=workers.process_name())
        worker._start_scheduler()  # as rq's work() does: the locks are held, no scheduler runs
        assert worker.scheduler._process is None
    heartbeat = workers.Heartbeat(app, queues.QUEUE_NAMES)
    heartbeat.worker = worker
    heartbeat.start()
    try:
        wait_until(lambda: worker.scheduler._process is not None
                   and worker.scheduler._process.is_alive(), 10, "the scheduler taken over")
        assert {connection.get(key) for key in locks} == {worker.scheduler.name.encode()}
    finally:
        heartbeat.stop()
        heartbeat.join(5)
        worker.stop_scheduler()
        worker.scheduler.release_locks()


def _ignore_sigterm_and_wait(ignoring):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ignoring.set()
    time.sleep(120)


def test_a_scheduler_that_ignores_sigterm_is_killed_when_the_worker_stops(make_app, database_url):
    """As one does that got SIGTERM before setting its handler: the worker must not wait for ever."""
    app = make_app(database_url)
    with app.app_context():
        worker = workers.GatewayWorker([queues.queue(queues.QUEUE_NAMES[0])],
                                       connection=queues.connection(), name=workers.process_name())
        worker.scheduler = RQScheduler(worker.queues, connection=worker.connection)
        forking = multiprocessing.get_context("fork")
        ignoring = forking.Event()
        stubborn = forking.Process(target=_ignore_sigterm_and_wait, args=(ignoring,))
        stubborn.start()
        assert ignoring.wait(30)
        worker.scheduler._process = stubborn
        worker.stop_scheduler()
        assert not stubborn.is_alive()
        assert stubborn.exitcode == -signal.SIGKILL


def _reconcile_beside_another(config: dict) -> None:
    """A worker process's heartbeat, its reconciler's pass replaced by one that notes, in Redis,
    who ran it and whether another pass was running at the same time."""
    from gateway import create_app
    from gateway.delivery import reconciler

    app = create_app(config)
    connection = redis.Redis.from_url(config["REDIS_URL"])

    def noted_pass() -> dict[str, int]:
        if connection.incr("test:running") > 1:
            connection.incr("test:overlaps")
        time.sleep(1.6)  # longer than the lock's 1.5 s: the heartbeat must renew it meanwhile
        connection.decr("test:running")
        connection.rpush("test:passes", os.getpid())
        return {}

    reconciler.reconcile = noted_pass
    workers.Heartbeat(app, ["sms"]).start()
    time.sleep(120)


def test_one_worker_of_two_runs_the_reconciler_and_another_takes_over_when_it_dies(
        redis_url, tmp_path):
    config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'tongbao.db'}", "REDIS_URL": redis_url,
              "INSTANCE_PATH": str(tmp_path / "instance"), "TESTING": True,
              "RECONCILE_SECONDS": 2, "STALE_SENDING_SECONDS": 1}  # the lock lapses in 1.5 s
    connection = redis.Redis.from_url(redis_url)
    forking = multiprocessing.get_context("fork")
    processes = [forking.Process(target=_reconcile_beside_another, args=(config,))
                 for _ in range(2)]
    for process in processes:
        process.start()
    try:
        passes = lambda: [int(pid) for pid in connection.lrange("test:passes", 0, -1)]
        wait_until(lambda: len(passes()) >= 3, 30, "three reconciler passes")
        holders = set(passes())
        assert len(holders) == 1 and holders <= {p.pid for p in processes}
        holder = next(p for p in processes if p.pid in holders)
        assert str(holder.pid) in connection.get(workers.RECONCILE_LOCK).decode()
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
        connection.set("test:running", 0)  # the killed one may have died mid-pass
        other = next(p for p in processes if p is not holder)
        wait_until(lambda: other.pid in passes(), 15, "the other worker's first pass")
        wait_until(lambda: passes().count(other.pid) >= 2, 15, "two passes of the other")
        assert int(connection.get("test:overlaps") or 0) == 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()


class TestOneWorkerProcess:
    @pytest.fixture
    def app(self, make_app, database_url, twilio):
        # Batches of two: the notice below is several jobs, as a county's is hundreds.
        return make_app(database_url, BATCH_SIZE=2, TWILIO_ACCOUNT_SID=twilio.account_sid,
                        TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_FROM_NUMBER="+15005550006",
                        TWILIO_API_BASE=twilio.url)

    def test_its_jobs_send_over_one_kept_alive_connection_to_the_provider(self, app, county,
                                                                          twilio):
        announcement_id = planned(app, channels=["sms"])

        run_jobs(app)

        with app.extensions["engine"].connect() as conn:
            sent = ledger.counts(conn, announcement_id)["sms"]["sent"]
        # More sends than two batches hold: three jobs or more, each its own rq job.
        assert sent == len(twilio.requests) > 2 * app.config["BATCH_SIZE"]
        # One connection for every send of every job: not one per send, nor one per job.
        assert twilio.connections == 1
