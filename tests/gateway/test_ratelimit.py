"""The shared send-rate limit: slots 1/rate apart for all workers, no second over the rate."""
from __future__ import annotations

import time

import pytest
import redis

from gateway.delivery.ratelimit import BLOCK_MOST, BLOCK_SECONDS, RateLimiter

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


def admit(limiter, send_id="", *, answered="", longest_wait=10_000_000):
    return limiter._admit(keys=[limiter.log_key], args=[
        limiter.per_window, 1_000_000, 60_000_000, answered, send_id, longest_wait])


def test_sends_in_flight_fill_the_second_and_the_next_one_waits(redis_url):
    connection = redis.Redis.from_url(redis_url)
    limiter = RateLimiter(connection, "sms:twilio_sms", per_second=3)
    # Three sends admitted at once (slots that came due together after a late wake-up) ...
    assert [admit(limiter, send_id) for send_id in "abc"] == [0, 0, 0]
    # ... and while none has been answered, a fourth is told to look again shortly.
    assert admit(limiter, "d", longest_wait=333_333) == 333_333
    assert connection.zcard(limiter.log_key) == 3


def test_an_answered_send_counts_for_a_second_after_its_answer(redis_url):
    connection = redis.Redis.from_url(redis_url)
    limiter = RateLimiter(connection, "sms:twilio_sms", per_second=3)
    for send_id in "abc":
        admit(limiter, send_id)
    for send_id in "abc":
        admit(limiter, answered=send_id)
    seconds, microseconds = connection.time()
    now = seconds * 1_000_000 + microseconds
    assert all(now - 100_000 < score <= now
               for _, score in connection.zrange(limiter.log_key, 0, -1, withscores=True))
    # The fourth may go once the first answer is a second old, not before.
    assert 900_000 < admit(limiter, "d") <= 1_000_000


def test_wait_turn_stamps_the_previous_send_and_finished_the_last(redis_url):
    connection = redis.Redis.from_url(redis_url)
    limiter = RateLimiter(connection, "sms:twilio_sms", per_second=100)

    def scores():
        seconds, microseconds = connection.time()
        now = seconds * 1_000_000 + microseconds
        return [score - now for _, score in connection.zrange(limiter.log_key, 0, -1,
                                                               withscores=True)]

    limiter.wait_turn()
    [in_flight] = scores()
    assert in_flight > 50_000_000  # not answered yet: counts as recent for a long while
    limiter.wait_turn()
    first, second = scores()
    assert first <= 0 < 50_000_000 < second  # asking for the next turn stamped the first
    limiter.finished()
    assert all(score <= 0 for score in scores())


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


def test_a_fast_sender_uses_its_block_to_the_end_and_drops_it_after_a_pause(redis_url):
    limiter = RateLimiter(redis.Redis.from_url(redis_url), "outbox", per_second=1_000_000)
    assert limiter.block == BLOCK_MOST  # spanning 100 µs of schedule
    reservations = []
    reserve = limiter._reserve
    limiter._reserve = lambda **arguments: reservations.append(1) or reserve(**arguments)
    for _ in range(20):  # a slow provider: the slots' moments pass while the caller sends
        limiter.wait_turn()
        time.sleep(BLOCK_SECONDS / 10)
    assert len(reservations) == 1 and len(limiter._slots) == BLOCK_MOST - 20
    time.sleep(BLOCK_SECONDS * 1.5)  # a pause between batches: the leftovers are dropped
    limiter.wait_turn()
    assert len(reservations) == 2 and len(limiter._slots) == BLOCK_MOST - 1


def test_a_strict_sender_reserves_one_slot_at_a_time(redis_url):
    limiter = RateLimiter(redis.Redis.from_url(redis_url), "sms:twilio_sms", per_second=50)
    assert limiter.block == 1
