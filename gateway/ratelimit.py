"""A send-rate limit shared by every worker, kept in Redis.

Each sender (a channel's provider account) has one key holding the next free
send time. A caller reserves the next slot atomically in a Lua script and waits
until it comes, so any number of workers together keep to the configured rate:
slots are spaced 1/rate apart, never bunched. Redis's own clock is used, so
workers' clocks need not agree.
"""
from __future__ import annotations

import time

import redis

_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_free < now then next_free = now end
local expire_ms = math.floor((next_free + interval - now) / 1000) + 1000
redis.call('SET', KEYS[1], tostring(next_free + interval), 'PX', expire_ms)
return next_free - now
"""


class RateLimiter:
    def __init__(self, connection: redis.Redis, sender: str, per_second: float):
        self.key = f"tongbao:rate:{sender}"
        self.interval_us = max(1, int(1_000_000 / per_second))
        self._reserve = connection.register_script(_RESERVE)

    def wait_turn(self) -> float:
        """Block until this caller's slot; returns the seconds waited."""
        wait = self._reserve(keys=[self.key], args=[self.interval_us]) / 1_000_000
        if wait > 0:
            time.sleep(wait)
        return wait
