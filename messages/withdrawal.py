"""The fixed, pre-approved wording that withdraws a notice, and the headline of a correction.

A cancel goes out at once with no second person, so what it says cannot be
typed by whoever cancels: it only names the withdrawn notice (its headline and
when it was issued) and says it is withdrawn. A correction written at the same
time is an update that waits for approval; its headline says it is a correction.
"""
from __future__ import annotations

from datetime import datetime, timezone

from messages.announcement import LIMITS
from messages.phrases import phrase
from messages.wechat import CHINA_STANDARD_TIME


def withdrawal_notice(language: str, headline: str, issued_at: datetime) -> str:
    """The whole text of a cancel, e.g. ``12月2日14:30发布的通知“暴雨红色预警”已撤销…``.

    A naive ``issued_at`` is taken as UTC, the ledger's clock; the time is said in Beijing time.
    """
    return phrase(language, "withdrawal").format(headline=headline,
                                                 time=said_time(language, issued_at))


def said_time(language: str, moment: datetime) -> str:
    """When a notice was issued, in Beijing time (``12月2日14:30`` style); naive is UTC."""
    local = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
             ).astimezone(CHINA_STANDARD_TIME)
    return phrase(language, "withdrawal.time").format(moment=local)


def correction_headline(language: str, headline: str) -> str:
    """The original's headline marked as a correction, within the headline's limit."""
    return (phrase(language, "correction.headline") + headline)[:LIMITS["headline"]]
