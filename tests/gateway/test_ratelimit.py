"""The shared send-rate limit: slots handed out 1/rate apart to every worker together."""
from __future__ import annotations

import uuid

import pytest
import redis

from gateway.ratelimit import RateLimiter

pytestmark = pytest.mark.integration


def test_two_workers_share_one_schedule_of_slots(redis_url):
    connection = redis.Redis.from_url(redis_url)
    first, second = (RateLimiter(connection, "sms:twilio_sms", per_second=1) for _ in range(2))
    # Reserve (without sleeping) as two workers would, alternately.
    waits = [(first if i % 2 else second)._reserve(keys=[first.key], args=[first.interval_us])
             for i in range(10)]
    slots = [round(wait / 1_000_000) for wait in waits]
    assert slots == list(range(10))  # one a second, never two in the same second


def test_senders_do_not_share_slots(redis_url):
    connection = redis.Redis.from_url(redis_url)
    sms = RateLimiter(connection, "sms:twilio_sms", per_second=1)
    voice = RateLimiter(connection, "voice:twilio_voice", per_second=1)
    sms._reserve(keys=[sms.key], args=[sms.interval_us])
    assert voice._reserve(keys=[voice.key], args=[voice.interval_us]) == 0


def test_a_late_send_cannot_push_a_second_over_the_rate(redis_url):
    connection = redis.Redis.from_url(redis_url)
    limiter = RateLimiter(connection, "sms:twilio_sms", per_second=3)

    def admit():
        return limiter._admit(keys=[limiter.log_key], args=[3, 1_000_000, uuid.uuid4().hex])

    # Three sends admitted at once (slots that came due together after a late wake-up) ...
    assert [admit() for _ in range(3)] == [0, 0, 0]
    # ... and the fourth must wait until the first is a second old.
    wait = admit()
    assert 900_000 < wait <= 1_000_000
    assert connection.zcard(limiter.log_key) == 3


def test_only_low_rates_keep_the_admission_log(redis_url):
    connection = redis.Redis.from_url(redis_url)
    assert RateLimiter(connection, "sms:twilio_sms", per_second=50).strict
    assert not RateLimiter(connection, "outbox", per_second=1000).strict


def test_a_fast_sender_reserves_a_block_of_slots_that_others_wait_behind(redis_url):
    connection = redis.Redis.from_url(redis_url)
    first, second = (RateLimiter(connection, "outbox", per_second=1000) for _ in range(2))
    assert first.block == 50  # 50 ms of schedule at 1,000 a second
    first.wait_turn()
    # One round trip reserved the next 49 sends too, 1 ms apart ...
    assert len(first._slots) == 49
    assert first._slots[1] - first._slots[0] == pytest.approx(0.001)
    # ... and the other worker's first slot comes after all of them.
    assert second._reserve(keys=[second.key], args=[second.interval_us, 1]) > 0


def test_a_strict_sender_reserves_one_slot_at_a_time(redis_url):
    limiter = RateLimiter(redis.Redis.from_url(redis_url), "sms:twilio_sms", per_second=50)
    assert limiter.block == 1
