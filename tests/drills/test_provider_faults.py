"""Drills 4, 5 and 6: the SMS provider answering 500, answering 500 at random, answering slowly.

The Twilio stand-in runs in its own process and is switched mid-send (see
``tests/fakes/twilio_process.py``). A 500 (Twilio code 20500) is an answer:
the message was not taken, so nothing is in doubt and no duplicate is
allowed; a slow answer is still an answer. Every resident must have the
message, and every row be settled, ``RECOVERY`` seconds after the fault ends.
"""
from __future__ import annotations

import time

import pytest

from tests.drills.conftest import recovered
from tests.drills.harness import Settings

pytestmark = [pytest.mark.drill, pytest.mark.slow, pytest.mark.integration]

RECOVERY = 30


def test_provider_answering_500(drill):
    # The 60 s of 500s against a 30 s first retry delay, scaled to 18 s against 7 s:
    # every row's first try (500 rows: 3-5 s) and second (7 s later) fall in the outage,
    # its third (14 s after that) after it: three tries used to be all a row got.
    settings = Settings(residents=600, retry_delay_seconds=7)
    run = drill("provider-500-for-18s", settings)
    run.load_county()
    run.start_workers()
    run.publish()
    run.twilio.wait_total(100, 60)
    run.twilio.set_mode("error")
    time.sleep(18)
    run.twilio.set_mode("normal")
    recovered(run, settings, recovery=RECOVERY,
              answered_500=run.twilio.state()["errors_answered"])


def test_provider_random_500s(drill):
    settings = Settings(residents=1000, retry_delay_seconds=1)
    run = drill("provider-random-500s-30pct-15s", settings)
    run.load_county()
    run.start_workers()
    run.twilio.set_mode("random", fraction=0.3, seed=14)
    run.publish()
    time.sleep(max(0.0, 15 - run.since_published()))
    run.twilio.set_mode("normal")
    recovered(run, settings, recovery=RECOVERY,
              answered_500=run.twilio.state()["errors_answered"])


def test_provider_slow(drill):
    # Each answer takes 5 s (the client waits 10 s) for 20 s: a batch claimed then stays
    # `sending` for twice STALE_SENDING_SECONDS (10) while its worker is alive and sending.
    settings = Settings(residents=1000)
    run = drill("provider-slow-5s-for-20s", settings)
    run.load_county()
    run.start_workers()
    run.publish()
    run.twilio.wait_total(200, 60)
    run.twilio.set_mode("slow", delay=5)
    time.sleep(20)
    run.twilio.set_mode("normal")
    recovered(run, settings, recovery=RECOVERY)
