"""The logs of every process (web, rq workers and their scheduler, the ack listener): one event
per line, JSON by default (``LOG_FORMAT=json``) or plain text (``text``, the quickstart's),
phone numbers and WeChat openids masked.

What a line is about travels with the code that runs, in a context variable: the web process
binds a request id (``gateway.web.request_ids``), ``gateway.delivery.queues`` copies it with
the announcement id into each job's meta, and the worker binds both again while the job runs
(``gateway.delivery.workers``). A log call may add ``announcement_id`` or ``delivery_id`` with
``extra=``; the line carries every one of them it knows.

Masking is a filter on the one handler, so it sees every record whatever logger wrote it, after
the message's arguments are put in: ``log.info("to %s", phone)`` is masked as surely as a
provider's error text quoting the number. It masks phone numbers (E.164, Chinese mobiles,
with or without spaces or dashes) and openids of WeChat's shape (28 characters from ``o``) or
named as such (``openid=…``, ``touser``); an id the log line does not name is not recognised
(a roster's free-form openid in a sentence of its own), so code logs delivery ids, not addresses.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Iterator

FORMATS = ("json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Libraries that log every migration step or HTTP request at INFO (twilio: each request's
#: parameters): at WARNING unless LOG_LEVEL is DEBUG.
CHATTY = ("alembic", "httpx", "twilio")
#: What a line may say it is about, beside its message.
FIELDS = ("request_id", "job_id", "announcement_id", "delivery_id")
#: Record attributes (``extra=``) that hold an address and are masked whole.
PERSONAL_FIELDS = ("address", "phone", "openid")

_context: ContextVar[dict] = ContextVar("tongbao_log_context", default={})

_PHONE = re.compile(r"(?<![\w+])(?:(?:\+|%2[Bb])\d{8,15}|(?:86)?1[3-9]\d[ -]?\d{4}[ -]?\d{4})"
                    r"(?![\w])")
_OPENID_SHAPE = re.compile(r"(?<![\w-])o[A-Za-z0-9_-]{27}(?![\w-])")
_OPENID_NAMED = re.compile(r"(?i)\b(openid|open_id|touser|fromusername|tousername)"
                           r"([\"']?\s*[:=]\s*[\"']?)([A-Za-z0-9_-]{1,64})")


def mask(text: str) -> str:
    """``text`` with phone numbers as ``138****0015`` and openids as ``oAb****9x``."""
    text = _PHONE.sub(lambda m: _masked_phone(m.group(0)), text)
    text = _OPENID_NAMED.sub(lambda m: m.group(1) + m.group(2) + _masked_id(m.group(3)), text)
    return _OPENID_SHAPE.sub(lambda m: _masked_id(m.group(0)), text)


def _masked_phone(number: str) -> str:
    plus = "+" if number.startswith("+") else "%2B" if number[:3].upper() == "%2B" else ""
    digits = re.sub(r"\D", "", number[len(plus):])
    return plus + digits[:-8] + "****" + digits[-4:]


def _masked_address(value: str) -> str:
    """A value known to be an address: a phone as a phone, anything else as an id."""
    masked = mask(value)
    return masked if masked != value else _masked_id(value)


def _masked_id(value: str) -> str:
    return value[:3] + "****" + value[-2:] if len(value) > 8 else "****"


@contextmanager
def bound(**fields) -> Iterator[None]:
    """Lines logged inside carry these fields (those given as None are left out)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields):
    """Bind fields until ``unbind(token)``: for a request, whose start and end are two hooks."""
    return _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def unbind(token) -> None:
    _context.reset(token)


def current(name: str):
    """A bound field's value (``request_id``), or None."""
    return _context.get().get(name)


class MaskingFilter(logging.Filter):
    """Puts the context's fields on the record and masks its message, traceback and addresses."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        record.msg = mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        for name in PERSONAL_FIELDS:
            if getattr(record, name, None):
                setattr(record, name, _masked_address(str(getattr(record, name))))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, event, the known ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc)
                .isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "event": record.getMessage()}
        for name in FIELDS + PERSONAL_FIELDS:
            if getattr(record, name, None) is not None:
                line[name] = getattr(record, name)
        if record.exc_text or record.exc_info:
            line["exception"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message [request_id=… announcement_id=…]`` for a person at a terminal."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        known = " ".join(f"{name}={getattr(record, name)}" for name in FIELDS
                         if getattr(record, name, None) is not None)
        text = super().format(record)
        first, newline, rest = text.partition("\n")
        return f"{first} [{known}]{newline}{rest}" if known else text


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest swaps it per test)."""

    tongbao = True

    def __init__(self):
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def make_handler(log_format: str) -> logging.Handler:
    """The one handler: masking, in ``log_format``, on stderr (gunicorn's ``logconfig_dict``
    makes its own with this, so its lines are the same)."""
    handler = _StderrHandler()
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


def configure(log_format: str, level: str = "INFO") -> None:
    """Send every logger's records through one masking handler on stderr, in ``log_format``.

    Called by the app factory in each process; calling it again replaces its handler (a test's
    second app, ``serve`` choosing text), and leaves handlers others added (pytest's) alone.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "tongbao", False)]:
        root.removeHandler(handler)
    root.addHandler(make_handler(log_format))
    root.setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
