"""CAP 1.2 in and out, and the Atom feed that points at the CAP documents.

Other systems (the provincial platform, a weather service) send alerts as OASIS
CAP 1.2 (``messages.cap.read``); map apps and alert aggregators read ours the
same way (``messages.cap.write``). What both sides share is here: the names,
the vendored schemas in ``messages/schema/`` and the check against them, which
every document read and every document written goes through.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import xmlschema

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schema"
CAP_SCHEMA_PATH = SCHEMA_DIR / "CAP-v1.2.xsd"
ATOM_SCHEMA_PATH = SCHEMA_DIR / "atom.xsd"

# The <geocode><valueName> values taken to name a Chinese administrative division
# code (GB/T 2260, as used by the 高德/Amap "adcode"). Compared without case or spaces.
ADMINISTRATIVE_CODE_NAMES = ("GB/T 2260", "GB2260", "ADCODE", "administrative_code")
ADMINISTRATIVE_CODE_NAME = ADMINISTRATIVE_CODE_NAMES[0]  # what our own CAP output writes

# The CAP <language> tag (RFC 3066) our output writes for a canonical language
# (``messages.languages``); any other is written as its canonical tag (``yue``, ``es``).
LANGUAGE_TAGS = {"zh": "zh-CN", "en": "en-US"}


def cap_language_tag(language: str) -> str:
    return LANGUAGE_TAGS.get(language, language)

# CAP 1.2 §3.2.1: identifier and sender "MUST NOT include spaces, commas or restricted
# characters (< and &)", which is what lets <references> be split on spaces and commas.
NOT_CAP_IDENTIFIER = re.compile(r"[\s,<&]")


class CapError(ValueError):
    """A CAP document we refuse, with the line it went wrong on when known."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(message if line is None else f"line {line}: {message}")
        self.message = message
        self.line = line


@cache
def _cap_schema() -> xmlschema.XMLSchema:
    # "sandbox": the schema may only import files from its own directory, never the network.
    return xmlschema.XMLSchema(str(CAP_SCHEMA_PATH), allow="sandbox")


def check_against_schema(root: ET.Element) -> None:
    """Raise ``CapError`` at the first place ``root`` breaks the CAP 1.2 schema."""
    # The instance is already parsed; it may not make the validator open anything at all.
    instance = xmlschema.XMLResource(root, allow="none")
    error = next(_cap_schema().iter_errors(instance, use_location_hints=False), None)
    if error is not None:
        message = f"not valid CAP 1.2 at {error.path}: {error.reason or error.message}"
        raise CapError(message.replace(f"{{{CAP_NAMESPACE}}}", ""), line=error.sourceline)
