"""The warning document broadcasters ingest: GB/T 35965.1-2018 (应急信息交互协议 第1部分：预警信息).

China's exchange format between warning publishers and emergency broadcasting (TV crawls,
traffic radio, the national warning platform) is a CAP-like XML. We write it from the
structure the standard describes; its own schema and code tables (event types, organisation
industry codes) were not at hand, so the codes are configuration (``Codes``) with documented
defaults, and every document is checked against the schema written here from that structure
(``messages/schema/gbt35965-1-alert.xsd``) before it leaves. docs/interop.md lists what is
assumed.

* identifier: ``ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`` — the issuing office's 6-digit GB/T 2260
  code, its 3-digit organisation industry code, ``000``, ``00``; the send time in Beijing
  time; a sequence digit (the last digit of the announcement's number, so two notices sent
  in the same second differ unless their numbers end alike);
* times in Beijing time (``+08:00``), whole seconds;
* severity as the four warning colours of ``messages.severity`` (红/橙/黄/蓝 written
  Red/Orange/Yellow/Blue), ``Unknown`` otherwise;
* an Update or Cancel names what it replaces in ``references``:
  ``senderCode,identifier,sendTime`` of the original, as CAP does.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Mapping

import xmlschema

from messages import severity as severities
from messages.cap import SCHEMA_DIR
from messages.cap.write import xml_text

SCHEMA_PATH = SCHEMA_DIR / "gbt35965-1-alert.xsd"
MEDIA_TYPE = "application/xml"
BEIJING_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")
STATUS_WORDS = {"actual": "Actual", "exercise": "Exercise", "test": "Test", "system": "System",
                "draft": "Draft"}
MSG_TYPE_WORDS = {"alert": "Alert", "update": "Update", "cancel": "Cancel"}
#: The standard's language tag for our announcement languages.
LANGUAGE_TAGS = {"zh": "zh-CN", "en": "en-US"}

#: Event type codes assumed from the national warning platform's weather warnings (the
#: standard's own table was not at hand); matched against the notice's event, then its
#: headline. ``BROADCAST_EVENT_CODES`` replaces or adds entries.
DEFAULT_EVENT_CODES: dict[str, str] = {
    "台风": "11B01", "暴雨": "11B03", "暴雪": "11B04", "寒潮": "11B05", "大风": "11B06",
    "沙尘暴": "11B07", "高温": "11B09", "干旱": "11B14", "雷电": "11B15", "冰雹": "11B16",
    "霜冻": "11B17", "大雾": "11B19", "霾": "11B20", "道路结冰": "11B21",
}
#: The code of an event no entry matches ("other"), also configuration.
DEFAULT_OTHER_EVENT_CODE = "11Z99"
OFFICE_CODE = re.compile(r"\d{6}")
ORGANISATION_CODE = re.compile(r"\d{3}")


class DocumentError(ValueError):
    """A document that breaks the schema, or a value it cannot carry."""


@dataclass(frozen=True)
class Codes:
    """The code tables, from configuration."""

    office: str = "450700"        # GB/T 2260 code of the issuing office (钦州市)
    organisation: str = "000"     # the office's organisation industry code
    events: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EVENT_CODES))
    other_event: str = DEFAULT_OTHER_EVENT_CODE

    def __post_init__(self):
        if not OFFICE_CODE.fullmatch(self.office):
            raise DocumentError(f"office code {self.office!r} is not 6 digits (GB/T 2260)")
        if not ORGANISATION_CODE.fullmatch(self.organisation):
            raise DocumentError(f"organisation code {self.organisation!r} is not 3 digits")

    @property
    def sender_code(self) -> str:
        """``ZZZZZZDDDUUUXX``: the office, its organisation code, ``000`` and ``00``."""
        return f"{self.office}{self.organisation}00000"

    def event_code(self, event: str, headline: str) -> str:
        """The code of the longest table word in the event (else the headline)."""
        for text in (event, headline):
            found = [word for word in self.events if word and word in (text or "")]
            if found:
                return self.events[max(found, key=len)]
        return self.other_event


@dataclass(frozen=True)
class Reference:
    """The notice an Update or Cancel replaces: its number and send time."""

    announcement_id: int
    sent: datetime


@dataclass(frozen=True)
class WarningDocument:
    """One notice in one language, as the gateway fills it from its stored announcement."""

    announcement_id: int
    sent: datetime
    status: str
    msg_type: str
    sender_name: str
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str
    description: str
    language: str
    areas: list[tuple[str, str]]  # (GB/T 2260 code, name)
    instruction: str = ""
    expires: datetime | None = None
    web: str | None = None
    reference: Reference | None = None


def beijing_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise DocumentError("a time without a time zone")
    return moment.astimezone(BEIJING_TIME).replace(microsecond=0).isoformat()


def identifier(codes: Codes, announcement_id: int, sent: datetime) -> str:
    """``ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`` of one notice."""
    local = sent.astimezone(BEIJING_TIME)
    return f"{codes.sender_code}_{local:%Y%m%d%H%M%S}_{announcement_id % 10}"


def to_document(notice: WarningDocument, codes: Codes) -> bytes:
    """The notice as a GB/T 35965.1-style XML document, checked against the schema."""
    root = ET.Element("alert")
    _add(root, "identifier", identifier(codes, notice.announcement_id, notice.sent))
    _add(root, "sender", notice.sender_name)
    _add(root, "senderCode", codes.sender_code)
    _add(root, "sendTime", beijing_time(notice.sent))
    _add(root, "status", STATUS_WORDS.get(notice.status, notice.status))
    _add(root, "msgType", MSG_TYPE_WORDS.get(notice.msg_type, notice.msg_type))
    _add(root, "scope", "Public")
    if notice.reference:
        original = notice.reference
        _add(root, "references", ",".join((
            codes.sender_code, identifier(codes, original.announcement_id, original.sent),
            beijing_time(original.sent))))
    info = _add(root, "info")
    _add(info, "language", LANGUAGE_TAGS.get(notice.language, notice.language))
    _add(info, "eventType", codes.event_code(notice.event, notice.headline))
    _add(info, "urgency", notice.urgency.capitalize())
    _add(info, "severity", colour(notice.severity))
    _add(info, "certainty", notice.certainty.capitalize())
    _add(info, "effective", beijing_time(notice.sent))
    if notice.expires:
        _add(info, "expires", beijing_time(notice.expires))
    for name, text in (("senderName", notice.sender_name), ("headline", notice.headline),
                       ("description", notice.description or notice.headline),
                       ("instruction", notice.instruction), ("web", notice.web)):
        if text:
            _add(info, name, text)
    for code, name in notice.areas:
        area = _add(info, "area")
        _add(area, "areaDesc", name or code)
        _add(area, "geocode", code)
    check(root)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True).replace(b"\r", b"&#13;")


def colour(severity: str) -> str:
    """The warning colour of a CAP severity (``extreme`` → Red, i.e. 红色), or Unknown."""
    found = severities.level(severity, "en")
    return found.colour if found else "Unknown"


@cache
def _schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA_PATH), allow="sandbox")


def check(document: ET.Element | bytes) -> None:
    """Raise ``DocumentError`` at the first place the document breaks the schema."""
    source = ET.fromstring(document) if isinstance(document, bytes) else document
    error = next(_schema().iter_errors(xmlschema.XMLResource(source, allow="none"),
                                       use_location_hints=False), None)
    if error is not None:
        raise DocumentError(f"not a valid warning document at {error.path}: "
                            f"{error.reason or error.message}")


def _add(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, name)
    try:
        element.text = xml_text(text, name)
    except ValueError as error:
        raise DocumentError(str(error)) from None
    return element
