"""What every renderer reads and what it gives back.

The per-format modules (``sms``, ``speech``, ``wechat``) and ``render``, which
picks one of them by channel, all import these types from here, so imports
inside ``messages`` run one way: ``render`` imports the formats, never the
reverse.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Protocol
from zoneinfo import ZoneInfo


class AnnouncementView(Protocol):
    id: int
    headline: str
    body: str
    instruction: str
    status: str
    msg_type: str
    severity: str
    language: str


@dataclass(frozen=True)
class RenderContext:
    office_name: str = "县人民政府信息办"
    office_name_en: str = ""  # said in English renderings when set (OFFICE_NAME_EN)
    sms_signature: str = "县人民政府"
    sms_signature_latin: str = ""  # opens SMS in Latin-script languages (English) when set
    public_base_url: str = "http://127.0.0.1:5000"
    time_zone: str = "Asia/Shanghai"  # the office's (OFFICE_TIMEZONE): times in messages are its
    audio_url: str | None = None  # the synthesized speech, when there is one
    audio_sha256: str | None = None  # loudspeakers check the audio they download against it

    def office(self, language: str) -> str:
        """Who is speaking, in a rendering's language: English ones name the English name
        when there is one, so an English card or call carries no Chinese name."""
        return self.office_name_en if language == "en" and self.office_name_en else self.office_name

    def local_time(self, moment: datetime) -> datetime:
        """``moment`` in the office's time zone; a naive one is UTC, the ledger's clock."""
        aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        return aware.astimezone(ZoneInfo(self.time_zone))

    def full_text_url(self, announcement_id: int) -> str:
        return f"{self.public_base_url.rstrip('/')}/a/{announcement_id}"


@dataclass(frozen=True)
class Rendered:
    channel: str
    language: str
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)
