"""Drill 1, the baseline: an SMS fan-out with no fault at all.

1,000 SMS-only residents, two workers, SMS_RATE 200, BATCH_SIZE 50: every
resident gets exactly one message, and the ledger holds every row sent,
within 60 s of approval (the sends alone take 5 s at the rate).
"""
from __future__ import annotations

import pytest

from tests.drills.conftest import report
from tests.drills.harness import Settings

pytestmark = [pytest.mark.drill, pytest.mark.slow, pytest.mark.integration]

DEADLINE = 60


def test_no_fault(drill):
    settings = Settings(residents=1000)
    run = drill("no-fault", settings)
    run.load_county()
    run.start_workers()
    run.publish()
    seconds = run.settle(settings.residents, DEADLINE)
    result = run.measure_sms(seconds, DEADLINE, in_flight_bound=0)
    report(result)
    result.check()
