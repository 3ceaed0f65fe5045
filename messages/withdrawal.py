"""The fixed, pre-approved wording that withdraws a notice, and the headline of a correction.

A cancel goes out at once with no second person, so what it says cannot be
typed by whoever cancels: it only names the withdrawn notice (its headline and
when it was issued) and says it is withdrawn. A correction written at the same
time is an update that waits for approval; its headline says it is a correction.
"""
from __future__ import annotations

from datetime import datetime

from messages.announcement import LIMITS
from messages.phrases import phrase
from messages.render_types import RenderContext


def withdrawal_notice(language: str, headline: str, issued_at: datetime,
                      context: RenderContext) -> str:
    """The whole text of a cancel, e.g. ``12月2日14:30发布的通知“暴雨红色预警”已撤销…``.

    A naive ``issued_at`` is taken as UTC, the ledger's clock; the time is said in the
    office's time zone (``context.time_zone``).
    """
    return phrase(language, "withdrawal").format(headline=headline,
                                                 time=said_time(language, issued_at, context))


def said_time(language: str, moment: datetime, context: RenderContext) -> str:
    """When a notice was issued, in the office's time zone (``2026年12月2日14:30`` style;
    English adds the offset from UTC, ``(UTC+8)``); naive is UTC."""
    local = context.local_time(moment)
    return phrase(language, "withdrawal.time").format(moment=local, offset=utc_offset(local))


def utc_offset(local: datetime) -> str:
    """``UTC+8``, ``UTC+5:30``, ``UTC-3``: how far a local time is from UTC, said shortly."""
    minutes = int(local.utcoffset().total_seconds() // 60)
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{'-' if minutes < 0 else '+'}{hours}" + (f":{rest:02d}" if rest else "")


def correction_headline(language: str, headline: str) -> str:
    """The original's headline marked as a correction, within the headline's limit."""
    return (phrase(language, "correction.headline") + headline)[:LIMITS["headline"]]
