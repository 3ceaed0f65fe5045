"""Our announcements as CAP 1.2 documents, and the Atom feed that points at them.

Each document is checked against the OASIS schema before it leaves, so a value
CAP cannot carry is refused here (``ValueError``) rather than by a reader.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable

from messages.announcement import (
    CATEGORIES, CERTAINTIES, MSG_TYPES, SEVERITIES, STATUSES, URGENCIES,
)
from messages.cap import (
    ADMINISTRATIVE_CODE_NAME, ATOM_NAMESPACE, CAP_MEDIA_TYPE, CAP_NAMESPACE,
    NOT_CAP_IDENTIFIER, cap_language_tag, check_against_schema,
)
from messages.languages import LanguageError, canonical

# XML 1.0 cannot carry these at all, not even as character references.
_NOT_XML_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class CapInfo:
    """One language of an outgoing alert. Enumerations in our lower case."""

    language: str  # canonical (messages.languages): "zh", "en", "yue", …
    category: str
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str
    description: str
    instruction: str = ""
    expires: datetime | None = None
    web: str | None = None  # the announcement's public page
    areas: list[tuple[str, str]] = field(default_factory=list)  # (GB/T 2260 code, name)


@dataclass
class CapExport:
    """An outgoing alert, filled by the gateway from its stored announcement."""

    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    references: str | None = None
    scope: str = "Public"
    infos: list[CapInfo] = field(default_factory=list)


@dataclass
class FeedEntry:
    """One current public announcement in the Atom feed."""

    entry_id: str  # an IRI that never changes for this announcement, e.g. its public URL
    title: str
    updated: datetime
    summary: str
    cap_url: str  # where its CAP document is served


def to_cap(alert: CapExport) -> bytes:
    """The alert as a CAP 1.2 document, each language its own <info>; checked against the schema."""
    root = ET.Element(f"{{{CAP_NAMESPACE}}}alert")
    _add(root, "identifier", _identifier_text(alert.identifier, "identifier"))
    _add(root, "sender", _identifier_text(alert.sender, "sender"))
    _add(root, "sent", _cap_datetime(alert.sent, "sent"))
    _add(root, "status", _cap_word(alert.status, STATUSES, "status"))
    _add(root, "msgType", _cap_word(alert.msg_type, MSG_TYPES, "msg_type"))
    _add(root, "scope", alert.scope)
    if alert.references:
        _add(root, "references", alert.references)
    for info in alert.infos:
        _add_info(root, info)
    check_against_schema(root)
    ET.indent(root)
    document = ET.tostring(root, encoding="utf-8", xml_declaration=True,
                           default_namespace=CAP_NAMESPACE)
    # A raw carriage return would come back as a line feed (XML normalises line ends);
    # ElementTree writes it raw, and only text can contain one, so escape it here.
    return document.replace(b"\r", b"&#13;")


def _add_info(root: ET.Element, info: CapInfo) -> None:
    try:
        if canonical(info.language) != info.language:
            raise LanguageError(f"{info.language!r} is not in its canonical form")
    except LanguageError as error:
        raise ValueError(f"language: {error}") from None
    if not info.areas:
        raise ValueError(f"info ({info.language}): name at least one area")
    element = _add(root, "info")
    _add(element, "language", cap_language_tag(info.language))
    _add(element, "category", _cap_word(info.category, CATEGORIES, "category"))
    _add(element, "event", info.event)
    _add(element, "urgency", _cap_word(info.urgency, URGENCIES, "urgency"))
    _add(element, "severity", _cap_word(info.severity, SEVERITIES, "severity"))
    _add(element, "certainty", _cap_word(info.certainty, CERTAINTIES, "certainty"))
    if info.expires:
        _add(element, "expires", _cap_datetime(info.expires, "expires"))
    for name, text in (("headline", info.headline), ("description", info.description),
                       ("instruction", info.instruction), ("web", info.web)):
        if text:
            _add(element, name, text)
    for code, name in info.areas:
        area = _add(element, "area")
        _add(area, "areaDesc", name or code)
        geocode = _add(area, "geocode")
        _add(geocode, "valueName", ADMINISTRATIVE_CODE_NAME)
        _add(geocode, "value", code)


def _add(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CAP_NAMESPACE}}}{name}")
    element.text = xml_text(text, name)
    return element


def xml_text(text: str | None, name: str) -> str | None:
    """``text`` unchanged if XML 1.0 can carry it; else a ValueError naming field ``name``."""
    bad = _NOT_XML_CHARACTER.search(text or "")
    if bad:
        raise ValueError(f"{name}: contains U+{ord(bad.group()):04X}, which XML cannot carry")
    return text


def _identifier_text(value: str, name: str) -> str:
    if not value or NOT_CAP_IDENTIFIER.search(value):
        raise ValueError(f"{name}: {value!r} must be non-empty, without spaces, commas, < or &")
    return value


def _cap_word(value: str, allowed: tuple[str, ...], name: str) -> str:
    """Our lower-case enumeration value as CAP spells it (``extreme`` → ``Extreme``)."""
    if value not in allowed:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return "CBRNE" if value == "cbrne" else value.capitalize()


def _cap_datetime(moment: datetime, name: str) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{name}: needs a time zone")
    # CAP 1.2 §3.3.2: whole seconds, a numeric offset, and UTC written -00:00, never Z.
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


# --- Atom feed -----------------------------------------------------------------------

def atom_feed(entries: Iterable[FeedEntry], *, feed_id: str, title: str, updated: datetime,
              self_url: str, author: str | None = None) -> bytes:
    """An Atom 1.0 feed whose entries link to their CAP documents, as alert aggregators expect.

    RFC 4287 requires an author; it defaults to the feed's title (the issuing office).
    """
    # Unprefixed names under an explicit xmlns: ElementTree's default_namespace option
    # cannot serialise the unqualified attributes (rel, href) that Atom uses.
    feed = ET.Element("feed", xmlns=ATOM_NAMESPACE)
    _add_atom(feed, "id", feed_id)
    _add_atom(feed, "title", title)
    _add_atom(feed, "updated", _atom_datetime(updated))
    _add_atom(_add_atom(feed, "author"), "name", author or title)
    _add_atom(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    for entry in entries:
        element = _add_atom(feed, "entry")
        _add_atom(element, "id", entry.entry_id)
        _add_atom(element, "title", entry.title)
        _add_atom(element, "updated", _atom_datetime(entry.updated))
        _add_atom(element, "summary", entry.summary)
        _add_atom(element, "link", rel="alternate", type=CAP_MEDIA_TYPE, href=entry.cap_url)
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True).replace(b"\r", b"&#13;")


def _add_atom(parent: ET.Element, name: str, text: str | None = None,
              **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, name,
                            {key: xml_text(value, name) for key, value in attributes.items()})
    element.text = xml_text(text, name)
    return element


def _atom_datetime(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("Atom dates need a time zone")
    return moment.replace(microsecond=0).isoformat()
