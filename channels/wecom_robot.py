"""WeCom group robots: one markdown post into a village's or grid team's work group.

``Outgoing.address`` is the robot's webhook key, ``Outgoing.rendered.text`` the markdown
(``messages.wechat.render_group_markdown``). A post the robot accepts is the delivery.

WeCom allows a robot about 20 messages a minute. Every worker process shares one sliding
window per robot in Redis (a small Lua script, on Redis's clock so that workers' clocks
need not agree): a send waits for a free slot up to ``max_wait`` seconds, and beyond that
fails as transient with the wait still needed as ``retry_after``. The window is keyed by a
hash of the robot key, because the key is the secret that lets anyone post to the group.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, Mapping

import redis
import requests

from channels.base import Channel, ChannelError, Outgoing, Receipt
from channels.http import provider_session

PERMANENT_ERRORS = {
    93000: "invalid robot webhook key",
    40058: "markdown content refused (over 4096 bytes?)",
}
FREQUENCY_LIMITED = 45009
FREQUENCY_RETRY_SECONDS = 60.0

# Drops posts older than the window; takes a slot if one is free (returns 0), else returns
# the milliseconds until the oldest post leaves the window.
_TAKE_SLOT = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local window_ms = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window_ms)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(tonumber(oldest[2]) + window_ms - now_ms, 1)
"""


class SharedRateLimit:
    """At most ``per_minute`` posts a minute per robot, across every worker process."""

    def __init__(self, client: redis.Redis, prefix: str, per_minute: int, max_wait: float):
        self.prefix, self.per_minute, self.max_wait = prefix, per_minute, max_wait
        self.take_slot = client.register_script(_TAKE_SLOT)

    def acquire(self, robot_key: str) -> None:
        window_key = self.prefix + hashlib.sha256(robot_key.encode()).hexdigest()[:24]
        deadline = time.monotonic() + self.max_wait
        while True:
            wait = self.take_slot(keys=[window_key], args=[60_000, self.per_minute,
                                                           uuid.uuid4().hex]) / 1000
            if wait == 0:
                return
            if time.monotonic() + wait > deadline:
                raise ChannelError(f"robot's rate limit ({self.per_minute} a minute) reached",
                                   code="rate-limited", retry_after=wait)
            time.sleep(wait)


class WecomRobotChannel(Channel):
    name = "wecom_robot"
    personal = False
    rate_per_second = 20 / 60

    def __init__(self, settings: Mapping[str, Any] | None = None):
        super().__init__(settings)
        self.api_base = (self.settings.get("api_base") or "https://qyapi.weixin.qq.com").rstrip("/")
        self.timeout = float(self.settings.get("timeout") or 10)
        self.session = provider_session(self.api_base)
        self.redis = redis.Redis.from_url(self.settings["redis_url"])
        self.rate_limit = SharedRateLimit(
            self.redis, f"{self.settings.get('redis_prefix', 'tongbao:')}wecom-robot:window:",
            per_minute=int(self.settings.get("per_minute", 20)),
            max_wait=float(self.settings.get("max_wait", 10)))

    def send(self, message: Outgoing) -> Receipt:
        try:
            self.rate_limit.acquire(message.address)
        except redis.RedisError as error:
            raise ChannelError(f"shared rate limit unavailable: {error}", code="redis") from error
        reply = self._post(message.address, {"msgtype": "markdown",
                                             "markdown": {"content": message.rendered.text}})
        errcode = reply.get("errcode", 0)
        if errcode == 0:
            return Receipt(status="delivered")
        if errcode in PERMANENT_ERRORS:
            raise ChannelError(PERMANENT_ERRORS[errcode], permanent=True, code=str(errcode))
        if errcode == FREQUENCY_LIMITED:
            raise ChannelError("robot's frequency limit reached", code=str(errcode),
                               retry_after=FREQUENCY_RETRY_SECONDS)
        raise ChannelError(f"WeCom error {errcode}: {reply.get('errmsg', '')}", code=str(errcode))

    def close(self) -> None:
        self.session.close()
        self.redis.close()

    def _post(self, robot_key: str, payload: dict) -> dict:
        try:
            response = self.session.post(f"{self.api_base}/cgi-bin/webhook/send",
                                         params={"key": robot_key}, json=payload,
                                         timeout=self.timeout)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as error:
            # The exception's text holds the URL, and the URL holds the secret key.
            raise ChannelError(f"WeCom API unreachable: {_describe(error)}", code="http") from None


def _describe(error: Exception) -> str:
    if isinstance(error, requests.HTTPError):
        return f"HTTP {error.response.status_code}"
    return type(error).__name__
