"""Reading a CAP 1.2 alert from another system and mapping it onto announcements.

A CAP document from outside is untrusted: it is size-checked, parsed with
defusedxml (no DTD, so no entity expansion and no external entities), validated
against the OASIS schema vendored in ``messages/schema/``, and every ``<info>``
block is then run through ``parse_announcement`` so CAP meets the same limits and
enumerations as the console's form.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from xml.parsers.expat import errors as expat_errors

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from messages.announcement import MSG_TYPES, AnnouncementInput, ValidationError, parse_announcement
from messages.cap import (
    ADMINISTRATIVE_CODE_NAMES, CAP_NAMESPACE, NOT_CAP_IDENTIFIER, CapError, cap_language_tag,
    check_against_schema,
)
from messages.languages import LanguageError, canonical

DEFAULT_CAP_LANGUAGE = "en-US"  # CAP 1.2 §3.2.2: an <info> without <language> is en-US

_NS = {"cap": CAP_NAMESPACE}


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
    check_against_schema(root)
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
    if not element.text or NOT_CAP_IDENTIFIER.search(element.text):
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
    """The block's language in its canonical form (``zh-CN``, ``zh-Hans``, ``cmn`` → ``zh``;
    ``es-US`` → ``es``, ``zh-yue`` → ``yue``): any known language."""
    try:
        return canonical(tag)
    except LanguageError as error:
        raise CapError(f"{where}: {error}", line=info.sourceline) from None


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
            raise CapError(f"a second <info> block in {cap_language_tag(announcement.language)}; send "
                           "one block per language", line=info.sourceline)
        seen.add(announcement.language)
