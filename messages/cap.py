"""CAP 1.2 in and out, and the Atom feed that points at the CAP documents.

Other systems (the provincial platform, a weather service) send alerts as OASIS
CAP 1.2; map apps and alert aggregators read ours the same way. A CAP document
from outside is untrusted: it is size-checked, parsed with defusedxml (no DTD,
so no entity expansion and no external entities), validated against the OASIS
schema vendored in ``messages/schema/``, and every ``<info>`` block is then run
through ``parse_announcement`` so CAP meets the same limits and enumerations as
the console's form.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Iterable
from xml.parsers.expat import errors as expat_errors

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
import xmlschema

from messages.announcement import (
    CATEGORIES, CERTAINTIES, LANGUAGES, MSG_TYPES, SEVERITIES, STATUSES, URGENCIES,
    AnnouncementInput, ValidationError, parse_announcement,
)

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
CAP_SCHEMA_PATH = SCHEMA_DIR / "CAP-v1.2.xsd"
ATOM_SCHEMA_PATH = SCHEMA_DIR / "atom.xsd"

# The <geocode><valueName> values taken to name a Chinese administrative division
# code (GB/T 2260, as used by the 高德/Amap "adcode"). Compared without case or spaces.
ADMINISTRATIVE_CODE_NAMES = ("GB/T 2260", "GB2260", "ADCODE", "administrative_code")
ADMINISTRATIVE_CODE_NAME = ADMINISTRATIVE_CODE_NAMES[0]  # what our own CAP output writes

# Our announcement languages and the CAP <language> tag (RFC 3066) each stands for.
LANGUAGE_TAGS = {"zh": "zh-CN", "en": "en-US"}
DEFAULT_CAP_LANGUAGE = "en-US"  # CAP 1.2 §3.2.2: an <info> without <language> is en-US

_NS = {"cap": CAP_NAMESPACE}
# XML 1.0 cannot carry these at all, not even as character references.
_NOT_XML_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# CAP 1.2 §3.2.1: identifier and sender "MUST NOT include spaces, commas or restricted
# characters (< and &)", which is what lets <references> be split on spaces and commas.
_NOT_CAP_IDENTIFIER = re.compile(r"[\s,<&]")


class CapError(ValueError):
    """A CAP document we refuse, with the line it went wrong on when known."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(message if line is None else f"line {line}: {message}")
        self.message = message
        self.line = line


@dataclass
class CapAlert:
    """An incoming CAP alert mapped onto announcements, one per language."""

    identifier: str
    sender: str
    sent: datetime
    status: str  # lower case, one of STATUSES
    msg_type: str  # lower case, one of MSG_TYPES
    references: str | None  # the CAP <references> text; see referenced_identifiers()
    infos: list[AnnouncementInput]


@dataclass
class CapInfo:
    """One language of an outgoing alert. Enumerations in our lower case."""

    language: str  # "zh" or "en"
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


# --- reading -------------------------------------------------------------------------

def parse_cap(xml_bytes: bytes, *, max_bytes: int = 1_000_000,
              now: datetime | None = None) -> CapAlert:
    """Read a CAP 1.2 alert from outside and map it onto announcements.

    ``now`` decides what "expired" means; it is there for tests and replays.
    Raises ``CapError`` for anything refused.
    """
    root = read_cap_document(xml_bytes, max_bytes=max_bytes)
    status = _status(root)
    msg_type = _msg_type(root)
    references = _references(root, msg_type)
    _require_public_scope(root)
    header = {"status": status, "msg_type": msg_type, "references": references}
    infos = root.findall("cap:info", _NS)
    if not infos:
        raise CapError("the alert has no <info> block, so there is nothing to announce",
                       line=root.sourceline)
    announcements = [_announcement(info, number, header, now)
                     for number, info in enumerate(infos, start=1)]
    _require_one_block_per_language(infos, announcements)
    return CapAlert(
        identifier=_cap_identifier(root, "identifier"),
        sender=_cap_identifier(root, "sender"),
        sent=datetime.fromisoformat(root.findtext("cap:sent", namespaces=_NS)),
        status=status,
        msg_type=msg_type,
        references=references,
        infos=announcements,
    )


def read_cap_document(xml_bytes: bytes, *, max_bytes: int = 1_000_000) -> ET.Element:
    """Parse untrusted bytes safely and check them against the CAP 1.2 schema.

    Returns the ``<alert>`` element; every element carries ``sourceline``.
    """
    if len(xml_bytes) > max_bytes:
        raise CapError(f"the document is {len(xml_bytes)} bytes long; the limit is {max_bytes}")
    root = _parse_safely(xml_bytes)
    if root.tag != f"{{{CAP_NAMESPACE}}}alert":
        raise CapError(f"the root element is {root.tag}, not <alert> in the CAP 1.2 namespace "
                       f"{CAP_NAMESPACE}", line=root.sourceline)
    _check_against_schema(root)
    return root


def referenced_identifiers(references: str | None) -> list[str]:
    """The identifiers of earlier alerts named by a CAP <references> text.

    CAP writes each reference as ``sender,identifier,sent``, separated by spaces.
    """
    return [reference.split(",")[1] for reference in (references or "").split()]


class _LinedElement(ET.Element):
    """An element that remembers its line: xmlschema reports it as the error's sourceline."""

    sourceline: int | None = None


class _LineRecordingTarget:
    """Builds the tree like ElementTree does, noting the line each element starts on."""

    def __init__(self) -> None:
        self._builder = ET.TreeBuilder(element_factory=_LinedElement)
        self.parser: DefusedXMLParser | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> ET.Element:
        element = self._builder.start(tag, attrib)
        # defusedxml uses ElementTree's pure-Python parser, whose expat object is .parser
        element.sourceline = self.parser.parser.CurrentLineNumber
        return element

    def end(self, tag: str) -> ET.Element:
        return self._builder.end(tag)

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> ET.Element:
        return self._builder.close()


def _parse_safely(xml_bytes: bytes) -> ET.Element:
    target = _LineRecordingTarget()
    # CAP needs no DTD, and a DTD is what carries entity bombs and external entities.
    parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True,
                              forbid_external=True)
    target.parser = parser
    try:
        parser.feed(xml_bytes)
        return parser.close()
    except DefusedXmlException as refused:
        raise CapError("document type declarations (<!DOCTYPE>) and entities are refused: CAP "
                       "needs none, and they carry entity-expansion (billion laughs) and external "
                       f"entity (XXE) attacks ({type(refused).__name__})",
                       line=parser.parser.CurrentLineNumber) from None
    except ET.ParseError as error:
        raise CapError(f"not XML: {expat_errors.messages[error.code]}",
                       line=error.position[0]) from None


@cache
def _cap_schema() -> xmlschema.XMLSchema:
    # "sandbox": the schema may only import files from its own directory, never the network.
    return xmlschema.XMLSchema(str(CAP_SCHEMA_PATH), allow="sandbox")


def _check_against_schema(root: ET.Element) -> None:
    # The instance is already parsed; it may not make the validator open anything at all.
    instance = xmlschema.XMLResource(root, allow="none")
    error = next(_cap_schema().iter_errors(instance, use_location_hints=False), None)
    if error is not None:
        message = f"not valid CAP 1.2 at {error.path}: {error.reason or error.message}"
        raise CapError(message.replace(f"{{{CAP_NAMESPACE}}}", ""), line=error.sourceline)


def _status(root: ET.Element) -> str:
    element = root.find("cap:status", _NS)
    if element.text == "System":
        raise CapError("status System is for messages between systems, not for residents; send "
                       "Actual, Exercise, Test or Draft", line=element.sourceline)
    return element.text.lower()


def _msg_type(root: ET.Element) -> str:
    element = root.find("cap:msgType", _NS)
    if element.text.lower() not in MSG_TYPES:
        raise CapError(f"msgType {element.text} is not an announcement; send Alert, Update or "
                       "Cancel", line=element.sourceline)
    return element.text.lower()


def _references(root: ET.Element, msg_type: str) -> str | None:
    element = root.find("cap:references", _NS)
    if element is None or not (element.text or "").strip():
        if msg_type != "alert":
            raise CapError(f"msgType {msg_type.capitalize()} needs <references> naming the alert "
                           "it changes", line=root.find("cap:msgType", _NS).sourceline)
        return None
    for reference in element.text.split():
        parts = reference.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapError(f"reference {reference!r} is not sender,identifier,sent",
                           line=element.sourceline)
    return " ".join(element.text.split())


def _require_public_scope(root: ET.Element) -> None:
    element = root.find("cap:scope", _NS)
    if element.text != "Public":
        # Everything accepted here is broadcast to every resident of the areas.
        raise CapError(f"scope {element.text} alerts are not for the public; only Public alerts "
                       "are announced", line=element.sourceline)


def _cap_identifier(root: ET.Element, name: str) -> str:
    element = root.find(f"cap:{name}", _NS)
    if not element.text or _NOT_CAP_IDENTIFIER.search(element.text):
        raise CapError(f"{name} {element.text!r} must be non-empty, without spaces, commas, "
                       "< or &", line=element.sourceline)
    return element.text


def _announcement(info: ET.Element, number: int, header: dict[str, str | None],
                  now: datetime | None) -> AnnouncementInput:
    language_tag = info.findtext("cap:language", DEFAULT_CAP_LANGUAGE, _NS).strip()
    where = f"info[{number}] ({language_tag})"  # numbered from 1, like the schema errors' paths
    mapping = {
        **header,
        "language": _language(language_tag, info, where),
        "category": info.findtext("cap:category", namespaces=_NS),  # ours has one: the first
        "event": info.findtext("cap:event", namespaces=_NS),
        "urgency": info.findtext("cap:urgency", namespaces=_NS),
        "severity": info.findtext("cap:severity", namespaces=_NS),
        "certainty": info.findtext("cap:certainty", namespaces=_NS),
        "headline": info.findtext("cap:headline", namespaces=_NS),
        "body": info.findtext("cap:description", namespaces=_NS),
        "instruction": info.findtext("cap:instruction", namespaces=_NS),
        "expires": info.findtext("cap:expires", namespaces=_NS),
        "areas": _administrative_codes(info, where),
    }
    try:
        return parse_announcement(mapping, now=now)
    except ValidationError as error:
        raise CapError(f"{where}: {error}", line=_line_of_field(info, error.field)) from None


def _language(tag: str, info: ET.Element, where: str) -> str:
    for language, cap_tag in LANGUAGE_TAGS.items():
        if tag.lower() == cap_tag.lower():  # RFC 3066 tags ignore case
            return language
    supported = " or ".join(LANGUAGE_TAGS.values())
    raise CapError(f"{where}: language {tag} is not one we announce in; send {supported}",
                   line=info.sourceline)


def _administrative_codes(info: ET.Element, where: str) -> list[str]:
    geocodes = info.findall("cap:area/cap:geocode", _NS)
    codes = [geocode.findtext("cap:value", "", _NS).strip() for geocode in geocodes
             if _names_administrative_code(geocode.findtext("cap:valueName", "", _NS))]
    if not codes:
        found = sorted({geocode.findtext("cap:valueName", "", _NS) for geocode in geocodes})
        raise CapError(f"{where}: no <area> has a <geocode> whose valueName is one of "
                       f"{', '.join(ADMINISTRATIVE_CODE_NAMES)} (found: {', '.join(found) or 'none'})",
                       line=info.sourceline)
    return codes


def _names_administrative_code(value_name: str) -> bool:
    def normal(name: str) -> str:
        return re.sub(r"\s+", "", name).lower()
    return normal(value_name) in {normal(name) for name in ADMINISTRATIVE_CODE_NAMES}


# Where parse_announcement's field names differ from CAP's element names.
_CAP_ELEMENT_OF_FIELD = {"body": "description", "areas": "area"}


def _line_of_field(info: ET.Element, field_name: str) -> int | None:
    name = _CAP_ELEMENT_OF_FIELD.get(field_name.split("[")[0], field_name)
    element = info.find(f"cap:{name}", _NS)
    return (element if element is not None else info).sourceline


def _require_one_block_per_language(infos: list[ET.Element],
                                    announcements: list[AnnouncementInput]) -> None:
    seen: set[str] = set()
    for info, announcement in zip(infos, announcements):
        if announcement.language in seen:
            raise CapError(f"a second <info> block in {LANGUAGE_TAGS[announcement.language]}; send "
                           "one block per language", line=info.sourceline)
        seen.add(announcement.language)


# --- writing -------------------------------------------------------------------------

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
    _check_against_schema(root)
    ET.indent(root)
    document = ET.tostring(root, encoding="utf-8", xml_declaration=True,
                           default_namespace=CAP_NAMESPACE)
    # A raw carriage return would come back as a line feed (XML normalises line ends);
    # ElementTree writes it raw, and only text can contain one, so escape it here.
    return document.replace(b"\r", b"&#13;")


def _add_info(root: ET.Element, info: CapInfo) -> None:
    if info.language not in LANGUAGES:
        raise ValueError(f"language: {info.language!r} is not one of {', '.join(LANGUAGES)}")
    if not info.areas:
        raise ValueError(f"info ({info.language}): name at least one area")
    element = _add(root, "info")
    _add(element, "language", LANGUAGE_TAGS[info.language])
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
    element.text = _xml_text(text, name)
    return element


def _xml_text(text: str | None, name: str) -> str | None:
    bad = _NOT_XML_CHARACTER.search(text or "")
    if bad:
        raise ValueError(f"{name}: contains U+{ord(bad.group()):04X}, which XML cannot carry")
    return text


def _identifier_text(value: str, name: str) -> str:
    if not value or _NOT_CAP_IDENTIFIER.search(value):
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
                            {key: _xml_text(value, name) for key, value in attributes.items()})
    element.text = _xml_text(text, name)
    return element


def _atom_datetime(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("Atom dates need a time zone")
    return moment.replace(microsecond=0).isoformat()
