"""Shared fixtures: a gateway app on a real database and the real Redis.

Integration tests run on SQLite and on PostgreSQL (a throwaway database per
test run on the machine's server). They use a dedicated Redis database
number, flushed before each test, so they never touch another program's keys.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest
import redis
from rq import SimpleWorker
from rq.scheduler import RQScheduler
from sqlalchemy import create_engine, text

from gateway import create_app
from gateway.store import db
from gateway.delivery import queues
from tests.fakes.twilio_server import FakeTwilio

POSTGRES_SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis://127.0.0.1:6379")
OWNER_KEY = "tongbao:test-run-owner"


@contextmanager
def new_postgres_database(prefix: str = "tongbao_test"):
    """The URL of a new, empty PostgreSQL database on the test server, dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    server = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + name
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    with new_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tongbao.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    yield base


@pytest.fixture(scope="session")
def redis_database():
    """A Redis database number of our own (8-15), so test runs side by side never flush each other."""
    for number in range(8, 16):
        connection = redis.Redis.from_url(f"{TEST_REDIS_SERVER}/{number}")
        if connection.set(OWNER_KEY, os.getpid(), nx=True, ex=6 * 3600):
            yield f"{TEST_REDIS_SERVER}/{number}"
            connection.flushdb()
            return
    pytest.fail("every Redis database from 8 to 15 is taken by another test run")


@pytest.fixture
def redis_url(redis_database):
    connection = redis.Redis.from_url(redis_database)
    # One transaction: between a bare flush and the owner key another run could claim it.
    with connection.pipeline(transaction=True) as emptied:
        emptied.flushdb().set(OWNER_KEY, os.getpid(), ex=6 * 3600).execute()
    yield redis_database


@pytest.fixture
def make_app(tmp_path, redis_url):
    """Build an app on a given database; the schema is migrated and ready."""
    made = []

    def build(database_url: str, **config):
        app = create_app({"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                          "INSTANCE_PATH": str(tmp_path / "instance"), "TESTING": True,
                          "RETRY_DELAY_SECONDS": 0, **config})
        db.upgrade(app.extensions["engine"])
        made.append(app)
        return app

    yield build
    for app in made:
        app.extensions["engine"].dispose()


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url)


def run_jobs(app, *, scheduled: bool = True, rounds: int = 10) -> int:
    """Run queued jobs to the end in this process, as a worker would; returns jobs run.

    With ``scheduled``, jobs rq's scheduler holds (retries) are moved to their
    queues as the scheduler would once they are due, and run too.
    """
    total = 0
    with app.app_context():
        names = [queues.queue(name) for name in queues.QUEUE_NAMES]
        for _ in range(rounds):
            worker = SimpleWorker(names, connection=queues.connection())
            worker.work(burst=True, with_scheduler=False)
            ran = worker.successful_job_count + worker.failed_job_count
            total += ran
            moved = _enqueue_due(names) if scheduled else 0
            if not ran and not moved:
                break
    return total


def _enqueue_due(names) -> int:
    """Hand due scheduled jobs to their queues, as rq's scheduler does."""
    scheduler = RQScheduler(names, connection=queues.connection())
    scheduler.acquire_locks()
    due = sum(len(queue.scheduled_job_registry.get_jobs_to_schedule()) for queue in names)
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    return due


@pytest.fixture
def twilio():
    """A local Twilio-compatible server, for the real twilio library to talk to."""
    with FakeTwilio() as server:
        yield server
