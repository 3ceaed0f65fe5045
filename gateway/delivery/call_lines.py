"""The provider account's concurrent-calls limit (``VOICE_CONCURRENT_CALLS``), kept in Redis.

A Twilio account places only so many calls at once; a call over the limit is queued by Twilio
or refused, out of the gateway's sight. So every voice worker takes a *line* before it places a
call and the call holds it until its final status callback (completed, busy, no answer,
failed: ``release``) says it is over. A callback that never comes (lost, or the gateway was
down) must not keep a line forever: each line lapses after the longest a call can last
(``twilio_voice.LONGEST_CALL_SECONDS``).

One sorted set of delivery ids, scored with the moment each line lapses; taking a line is one
atomic Lua script on Redis's own clock, so workers on several hosts share the limit.
"""
from __future__ import annotations

import time

from flask import current_app

from channels.twilio_voice import LONGEST_CALL_SECONDS
from gateway.delivery import queues

KEY = "tongbao:call-lines"
#: Longest pause between two looks for a free line: a line frees when a callback arrives,
#: which no worker is told of.
MAX_POLL_SECONDS = 0.25

_TAKE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local limit, hold, poll = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + hold, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.floor(hold / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, math.min(tonumber(oldest[2]) - now, poll))
"""


def limit() -> int:
    """Calls in progress at once; 0: no limit."""
    return current_app.config["VOICE_CONCURRENT_CALLS"]


def take(delivery_id: int) -> float:
    """Wait for a free line and give it to this delivery's call; returns the seconds waited."""
    lines = limit()
    if not lines:
        return 0.0
    take_line = queues.connection().register_script(_TAKE)
    waited = 0.0
    while wait_us := take_line(keys=[KEY], args=[lines, LONGEST_CALL_SECONDS * 1_000_000,
                                                 int(MAX_POLL_SECONDS * 1_000_000), delivery_id]):
        time.sleep(wait_us / 1_000_000)
        waited += wait_us / 1_000_000
    return waited


def release(delivery_id: int) -> None:
    """The call is over (or was never placed): its line is free."""
    if limit():
        queues.connection().zrem(KEY, delivery_id)


def in_use() -> int:
    """Lines held now (lapsed ones included until the next take)."""
    return queues.connection().zcard(KEY)
