"""The SMS text of an announcement, and the arithmetic of what it will cost.

An SMS part carries 140 bytes. Text that fits the GSM-7 alphabet packs 160
characters into a single message, or 153 into each part of a longer one (the
rest carries the header that joins the parts). Any other character, and every
Chinese one, switches the whole message to UCS-2: 70 UTF-16 units alone, 67 per
part. GSM-7 extension characters (€, {, ...) take two units, as do characters
outside the BMP (emoji); a phone never splits one of them across two parts, so
parts are packed a whole character at a time rather than by dividing a length.

A message longer than the segment budget is shortened at a sentence boundary,
body first, so the signature, the drill marker, the headline, the instruction
(for as long as possible) and the link to the full text always remain.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Sequence

from messages.phrases import marker, phrase
from messages.render_types import AnnouncementView, RenderContext, Rendered

DEFAULT_MAX_SEGMENTS = 4

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

#: (units in a single message, units per part of a longer one)
LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}

# Full-width stops end a sentence anywhere; ASCII ones only before a space or
# the end, so "3.5米" and "www.gov.cn" are not cut. Closing quotes stay with it.
_SENTENCE_END = re.compile(r"(?:[。！？]+[”’」』）)]*|[.!?]+[\"')\]]*(?=\s|$))\s*")


def encoding(text: str) -> str:
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text):
        return "GSM-7"
    return "UCS-2"


def _units(char: str, text_encoding: str) -> int:
    if text_encoding == "GSM-7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1  # a surrogate pair in UTF-16


def segments(text: str) -> int:
    """How many SMS parts ``text`` is billed as; an empty text is none."""
    text_encoding = encoding(text)
    single, per_part = LIMITS[text_encoding]
    units = [_units(char, text_encoding) for char in text]
    if sum(units) <= single:
        return 1 if text else 0
    parts, filled = 1, 0
    for size in units:
        if filled + size > per_part:
            parts, filled = parts + 1, 0
        filled += size
    return parts


def cost(segment_count: int, price_per_segment: Decimal | float) -> Decimal | float:
    return segment_count * price_per_segment


def describe(text: str) -> dict:
    """What the preview shows about one message."""
    return {"encoding": encoding(text), "segments": segments(text), "characters": len(text)}


def sentences(text: str) -> list[str]:
    """``text`` cut after each sentence end; a trailing fragment is its own piece."""
    pieces, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        pieces.append(text[start:end.end()])
        start = end.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _join(parts: Sequence[str]) -> str:
    return " ".join(part for part in parts if part)


def fit(head: str, parts: Sequence[str], tail: str, *,
        max_segments: int = DEFAULT_MAX_SEGMENTS) -> str:
    """``head``, ``parts`` and ``tail`` joined, within ``max_segments`` if possible.

    Whole sentences are dropped from the end of the first part, then of the
    next, until the text fits; ``head`` and ``tail`` are never touched, so a
    text whose head and tail alone exceed the budget comes back over it.
    """
    kept = [sentences(part) for part in parts]

    def joined() -> str:
        return _join([head, *("".join(pieces).rstrip() for pieces in kept), tail])

    for pieces in kept:
        while pieces and segments(joined()) > max_segments:
            pieces.pop()
    return joined()


def _link(language: str, label_key: str, url: str) -> str:
    return f"{phrase(language, label_key)}: {url}"


def render(announcement: AnnouncementView, language: str, context: RenderContext, *,
           max_segments: int = DEFAULT_MAX_SEGMENTS) -> Rendered:
    signature = f"【{context.sms_signature}】" if context.sms_signature else ""
    head = (signature + marker(language, announcement.status, announcement.msg_type)
            + announcement.headline)
    parts = [announcement.body, announcement.instruction]
    url = context.full_text_url(announcement.id)
    text = _join([head, *parts, _link(language, "details", url)])
    shortened = segments(text) > max_segments
    if shortened:
        # "Full text" rather than "Details": the reader should know words are missing.
        text = fit(head, parts, _link(language, "full_text", url), max_segments=max_segments)
    return Rendered("sms", language, text,
                    {**describe(text), "shortened": shortened, "max_segments": max_segments})
