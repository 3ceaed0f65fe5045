"""A send-rate limit shared by every worker, kept in Redis.

Two steps, both atomic Lua scripts on Redis's own clock (workers' clocks need
not agree):

1. **Spacing.** Each sender (a channel's provider account) has one key holding
   the next free send time; a caller reserves the next slot and sleeps until it
   comes, so sends are spread 1/rate apart instead of bunched.
2. **Admission.** Spacing alone is not enough where the provider counts: a
   worker that wakes late, or a request that lingers on the way, puts two
   sends closer together at the provider than they left. So each send is also
   entered in a log of recent sends, stamped with the latest moment the
   provider can have received it: while in flight, "not yet known" (it counts
   as recent), and once its answer is back, that moment. A send is admitted
   only while fewer than the rate's worth of sends are stamped within the last
   second. Since every send reaches the provider after it is admitted and
   before its answer comes back, **no one-second window at the provider holds
   more than the rate's sends**, however the trip there varies. The price is
   the provider's round trip, once per window: at 50/s and 5 ms it is 1 %; at
   200 ms, 17 %.

A caller stamps its previous send when it asks for the next turn, and with
``finished`` after its last. The admission log costs a second Redis round
trip per send; it is kept for rates up to ``STRICT_UP_TO`` per second, where a
provider counts and refuses (Twilio's 1 SMS a second on a long code), and
skipped above it. Above it a worker also reserves its slots ``BLOCK_SECONDS``
of schedule at a time (at most ``BLOCK_MOST``) and uses them all while it keeps
sending, so a fast sender (loudspeakers, an unthrottled outbox) does not pay a
Redis round trip per send either.

While Redis is away (a restart) a caller waits and asks again, with a growing
pause: nothing is sent unmetered, and the job holding the sends does not fail.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import deque

import redis

log = logging.getLogger(__name__)
#: Longest pause between two tries to reach Redis.
MAX_BACKOFF_SECONDS = 30

STRICT_UP_TO = 200
BLOCK_SECONDS = 0.05
BLOCK_MOST = 100
WINDOW_US = 1_000_000
#: How long an unanswered send counts as recent: longer than any request may take.
IN_FLIGHT_US = 60_000_000

_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local span = tonumber(ARGV[1]) * tonumber(ARGV[2] or '1')
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_free < now then next_free = now end
local expire_ms = math.floor((next_free + span - now) / 1000) + 1000
redis.call('SET', KEYS[1], tostring(next_free + span), 'PX', expire_ms)
return next_free - now
"""

_ADMIT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit, window, in_flight = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[4])
end
if ARGV[5] == '' then
  return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + in_flight, ARGV[5])
  redis.call('PEXPIRE', KEYS[1], math.floor((in_flight + window) / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.min(tonumber(oldest[2]) + window - now, tonumber(ARGV[6]))
"""


def effective_rate(per_second: float) -> float:
    """Sends per second the limiter lets through at most: a strict rate counts whole
    sends per second. The preview estimates with it."""
    if per_second > STRICT_UP_TO:
        return per_second
    return min(per_second, max(1, int(per_second)) * 1_000_000 / WINDOW_US)


class RateLimiter:
    def __init__(self, connection: redis.Redis, sender: str, per_second: float):
        self.key = f"tongbao:rate:{sender}"
        self.log_key = f"tongbao:rate-log:{sender}"
        self.interval_us = max(1, int(1_000_000 / per_second))
        self.per_window = max(1, int(per_second))
        self.strict = per_second <= STRICT_UP_TO
        self.block = 1 if self.strict else max(1, min(BLOCK_MOST, int(per_second * BLOCK_SECONDS)))
        self._slots: deque[float] = deque()
        self._last_turn = float("-inf")  # time.monotonic() of this caller's latest turn
        self._in_flight = ""  # this caller's send not yet stamped as answered
        self._reserve = connection.register_script(_RESERVE)
        self._admit = connection.register_script(_ADMIT)

    def wait_turn(self) -> float:
        """Block until this caller may send; returns the seconds waited."""
        waited = self._sleep(int((self._next_slot() - time.monotonic()) * 1_000_000))
        if self.strict:
            waited += self._enter(uuid.uuid4().hex)
        return waited

    def finished(self) -> None:
        """Stamp the caller's last send as answered (its next ``wait_turn`` does this otherwise)."""
        if self.strict and self._in_flight:
            self._enter("")

    def _enter(self, send_id: str) -> float:
        waited = 0.0
        while wait := self._ask(self._admit, keys=[self.log_key], args=[
                self.per_window, WINDOW_US, IN_FLIGHT_US, self._in_flight, send_id,
                self.interval_us]):
            self._in_flight = ""  # stamped by that call
            waited += self._sleep(wait)
        self._in_flight = send_id
        return waited

    def _next_slot(self) -> float:
        """The moment (``time.monotonic``) of this caller's next reserved slot."""
        now, previous = time.monotonic(), self._last_turn
        self._last_turn = now
        if self._slots and now - previous > BLOCK_SECONDS:
            # Left from an earlier batch: others have used that time since. A caller that kept
            # sending uses its block to the end, even late: it sent no faster than reserved, and
            # at rates where the block spans less than BLOCK_SECONDS dropping the rest cost a
            # Redis round trip every few dozen sends.
            self._slots.clear()
        if not self._slots:
            wait_us = self._ask(self._reserve, keys=[self.key], args=[self.interval_us, self.block])
            start = time.monotonic() + wait_us / 1e6
            self._slots.extend(start + index * self.interval_us / 1e6 for index in range(self.block))
        return self._slots.popleft()

    @staticmethod
    def _ask(script, **arguments):
        """Run a script, waiting out a Redis outage."""
        backoff = 0.5
        while True:
            try:
                return script(**arguments)
            except (redis.ConnectionError, redis.TimeoutError) as error:
                log.warning("rate limit: Redis unreachable (%s); asking again in %.1f s",
                            error, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    @staticmethod
    def _sleep(microseconds: int) -> float:
        seconds = max(0, microseconds) / 1_000_000
        if seconds:
            time.sleep(seconds)
        return seconds
