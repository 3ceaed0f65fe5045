"""One-time codes that prove a resident holds a phone (the self-registration page, /join).

A code is six digits, sent by SMS through the SMS channel (the outbox where no provider
is configured), kept in Redis only as a digest, and good for ``JOIN_CODE_MINUTES`` and
``MAX_TRIES`` wrong guesses; after them the code is void and a new one must be asked for.
It is bound to a ticket held by the browser session that asked for it, so a code read off
a phone cannot be typed into another session; what waits for the code (the phone, what the
resident typed) is kept under the ticket in Redis, not in the session cookie, which the
browser can read, and goes with the code.

Abuse limits, each a Redis counter over a fixed hour (the address is the client's, as the
proxies in ``TRUSTED_PROXIES`` saw it): one code a minute and ``JOIN_CODES_PER_NUMBER`` an
hour per phone; ``JOIN_CODES_PER_ADDRESS`` an hour per client address; ``WRONG_PER_ADDRESS``
wrong codes an hour per client address, whatever the numbers (no guessing across many).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any, Mapping

from flask import current_app

from gateway.delivery import providers, queues
from messages.verification import code_sms

MAX_TRIES = 5
WRONG_PER_ADDRESS = 20
RESEND_SECONDS = 60
HOUR = 3600
_PREFIX = "tongbao:join:"


class CodeRefused(Exception):
    """No code sent, or none accepted: ``reason`` says which limit (``wait``, ``number``,
    ``address``, ``tries``, ``expired``), ``seconds`` how long until it lifts (0: unknown)."""

    def __init__(self, reason: str, seconds: int = 0):
        super().__init__(reason)
        self.reason = reason
        self.seconds = seconds


def send_code(phone: str, address: str, language: str, waiting: Mapping[str, Any]) -> str:
    """Send a new code to ``phone``, keeping ``waiting`` until it is checked; returns the ticket
    the asking session keeps."""
    redis = queues.connection()
    config = current_app.config
    if not redis.set(_key("gap", phone), 1, nx=True, ex=RESEND_SECONDS):
        raise CodeRefused("wait", max(1, redis.ttl(_key("gap", phone))))
    _count_or_refuse(redis, _key("sent-number", phone), config["JOIN_CODES_PER_NUMBER"], "number")
    _count_or_refuse(redis, _key("sent-address", address), config["JOIN_CODES_PER_ADDRESS"],
                     "address")
    code = f"{secrets.randbelow(10 ** 6):06d}"
    ticket = secrets.token_urlsafe(16)
    minutes = config["JOIN_CODE_MINUTES"]
    redis.delete(_key("code", phone))
    redis.hset(_key("code", phone), mapping={"digest": _digest(ticket, code), "tries": 0})
    redis.expire(_key("code", phone), minutes * 60)
    redis.set(_key("waiting", ticket), json.dumps({**waiting, "phone": phone}), ex=minutes * 60)
    providers.send_sms_now(phone, code_sms(code, minutes, language, providers.render_context()))
    return ticket


def waiting_for(ticket: str) -> dict | None:
    """What waits for this ticket's code (with its ``phone``); ``None`` once it has expired."""
    kept = queues.connection().get(_key("waiting", ticket))
    return None if kept is None else json.loads(kept)


def check_code(ticket: str, code: str, address: str) -> dict | None:
    """What waited for the code when ``code`` is the one sent for this ticket (it is used up),
    ``None`` when it is not.

    Raises ``CodeRefused`` when there is no live code (``expired``), its tries are used up
    (``tries``) or this address has guessed wrong too often (``address``)."""
    redis = queues.connection()
    wrong_key = _key("wrong-address", address)
    if int(redis.get(wrong_key) or 0) >= WRONG_PER_ADDRESS:
        raise CodeRefused("address", max(0, redis.ttl(wrong_key)))
    waiting = waiting_for(ticket)
    if waiting is None:
        raise CodeRefused("expired")
    phone = waiting["phone"]
    stored = redis.hgetall(_key("code", phone))
    if not stored:
        raise CodeRefused("expired")
    if int(stored[b"tries"]) >= MAX_TRIES:
        raise CodeRefused("tries")
    if hmac.compare_digest(stored[b"digest"].decode(), _digest(ticket, code.strip())):
        redis.delete(_key("code", phone), _key("waiting", ticket))
        return waiting
    tries = redis.hincrby(_key("code", phone), "tries", 1)
    _count(redis, wrong_key)
    if tries >= MAX_TRIES:
        redis.delete(_key("waiting", ticket))
        raise CodeRefused("tries")
    return None


def _count_or_refuse(redis, key: str, limit: int, reason: str) -> None:
    if _count(redis, key) > limit:
        raise CodeRefused(reason, max(0, redis.ttl(key)))


def _count(redis, key: str) -> int:
    count = redis.incr(key)
    if count == 1:
        redis.expire(key, HOUR)
    return count


def _key(kind: str, value: str) -> str:
    return f"{_PREFIX}{kind}:{value}"


def _digest(ticket: str, code: str) -> str:
    return hashlib.sha256(f"{ticket}:{code}".encode()).hexdigest()
