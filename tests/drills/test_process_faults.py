"""Drills 2, 3 and 7: a worker SIGKILLed, Redis lost, PostgreSQL refusing connections.

Each sends an SMS fan-out with two supervised workers (SMS_RATE 200,
BATCH_SIZE 50, STALE_SENDING_SECONDS 10, RETRY_DELAY_SECONDS 2), puts the
fault in mid-send, takes it away, and then waits at most ``RECOVERY`` seconds
for every resident to have the message and the ledger to hold every row
settled, with nothing done by hand: the supervisor restarts processes that
exit, and that is all.

A worker killed mid-batch, or a database or Redis lost mid-batch, may have
handed the provider sends whose outcome it never recorded: those are the rows
in flight, at most one batch per worker at the fault, and the only duplicates
allowed.
"""
from __future__ import annotations

import json
import time

import pytest

from tests.drills.conftest import recovered
from tests.drills.harness import Settings, wait_until

pytestmark = [pytest.mark.drill, pytest.mark.slow, pytest.mark.integration]

#: Seconds after the fault ends by which everything must be settled (STALE_SENDING_SECONDS is 10).
RECOVERY = 30


def test_one_worker_sigkilled_three_times(drill):
    settings = Settings(residents=3000)
    run = drill("worker-sigkill-x3", settings)
    run.load_county()
    run.start_workers()
    run.publish()
    kills = []
    for _ in range(3):
        # Killed while it runs a delivery job (a restarted worker first has to come up again).
        wait_until(lambda: run.busy_on(0), 60, "worker 0 to be sending")
        time.sleep(0.3)
        kills.append(run.workers[0].kill())
    recovered(run, settings, recovery=RECOVERY,
              in_flight_bound=len(kills) * settings.batch_size)


def test_redis_killed_and_restarted_empty(drill):
    settings = Settings(residents=1000)
    run = drill("redis-killed-restarted-empty", settings)
    run.load_county()
    run.start_workers()
    run.publish()
    run.twilio.wait_total(250, 60)
    run.redis.kill()
    time.sleep(5)
    answered, body = run.status()  # the office still sees the progress, and why it stalls
    assert answered == 200 and json.loads(body)["queue_reachable"] is False, body
    run.redis.start()
    recovered(run, settings, recovery=RECOVERY,
              in_flight_bound=settings.workers * settings.batch_size)
    answered, body = run.status()
    assert answered == 200 and json.loads(body)["queue_reachable"] is True, body


def test_postgresql_refusing_connections(drill):
    settings = Settings(residents=1000)
    run = drill("postgresql-refused-15s", settings, proxy_database=True)
    run.load_county()
    run.start_workers()
    run.publish()
    run.twilio.wait_total(250, 60)
    run.proxy.refuse()
    time.sleep(15)
    run.proxy.allow()
    recovered(run, settings, recovery=RECOVERY,
              in_flight_bound=settings.workers * settings.batch_size)
