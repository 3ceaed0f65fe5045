"""The SMS text of an announcement, and the arithmetic of what it will cost.

An SMS part carries 140 bytes. Text that fits the GSM-7 alphabet packs 160
characters into a single message, or 153 into each part of a longer one (the
rest carries the header that joins the parts). Any other character, and every
Chinese one, switches the whole message to UCS-2: 70 UTF-16 units alone, 67 per
part. GSM-7 extension characters (€, {, ...) take two units, characters outside
the BMP (emoji) two UTF-16 units (a surrogate pair). A phone never splits what a
reader sees as one character across two parts, and an emoji may be many code
points (a ZWJ family, a flag, a keycap, a skin tone: ``messages.graphemes``), so
parts are packed a whole cluster at a time, as Twilio's segment calculator does,
rather than by dividing a length. Checked once against that calculator
(``sms-segments-calculator`` 1.3.0 from npm) on 1,700 strings: the same count wherever
both cut the text into the same clusters. Its grapheme splitter follows Unicode 10's
rules and cuts some newer ZWJ sequences with a skin tone (🧑🏽‍🤝‍🧑🏻, 🏃🏻‍➡️) in two; these stay
whole here, as current Unicode and phones have them, so for 39 of the 1,700 it counted
one part fewer than this does, never more.

An English notice opens with the Latin signature when one is configured
(``SMS_SIGNATURE_LATIN``): a Chinese 【signature】 alone would make all of it UCS-2,
two or three times the parts.

A message longer than the segment budget is shortened at a sentence boundary,
body first, so the signature, the drill marker, the headline, the instruction
(for as long as possible) and the link to the full text always remain. English
sentences do not end at abbreviations ("Dr.", "No.", "e.g."; "p.m." and "U.S."
only before a capital), nor inside a quotation. A part whose first sentence
alone is over the budget keeps what fits of it up to a clause boundary (，、；
or ", " "; "), marked with an ellipsis, rather than being dropped whole; a cut
inside a quotation closes it.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Callable, Sequence

from messages import severity
from messages.graphemes import graphemes
from messages.languages import script
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
# A clause ends after a full-width comma, enumeration comma or semicolon, or an ASCII
# comma or semicolon before a space (so "1,000" is one clause).
_CLAUSE_END = re.compile(r"[，、；]\s*|[,;]\s+")
_WORD_BEFORE_STOP = re.compile(r"([A-Za-z][A-Za-z.]*)\.[\"')\]]*\s*$")
#: Abbreviations after which an English sentence never ends ("Dr. Li", "No. 3", "e.g. rain").
NEVER_ENDS = frozenset({"dr", "mr", "mrs", "ms", "prof", "st", "mt", "no", "nos", "vs", "e.g",
                        "i.e", "cf", "approx", "fig", "tel"})
#: Abbreviations that end a sentence only before a capital ("at 5 p.m. Stay indoors" but
#: "at 5 p.m. today"); initialisms such as "U.S." count as these too.
MAY_END = frozenset({"a.m", "p.m", "etc", "jr", "sr", "inc", "ltd", "co"})
_INITIALISM = re.compile(r"(?:[a-z]\.)+[a-z]")
#: Opening quotation marks and their closing ones. The ASCII ones close themselves.
QUOTES = {"“": "”", "‘": "’", "「": "」", "『": "』", '"': '"', "'": "'"}


def encoding(text: str) -> str:
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text):
        return "GSM-7"
    return "UCS-2"


def _units(cluster: str, text_encoding: str) -> int:
    """The units one user-perceived character takes: septets, or UTF-16 code units."""
    if text_encoding == "GSM-7":
        return sum(2 if char in GSM7_EXTENSION else 1 for char in cluster)
    return len(cluster.encode("utf-16-le")) // 2  # a surrogate pair is two


def segments(text: str) -> int:
    """How many SMS parts ``text`` is billed as; an empty text is none."""
    text_encoding = encoding(text)
    single, per_part = LIMITS[text_encoding]
    units = [_units(cluster, text_encoding) for cluster in graphemes(text)]
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
    """``text`` cut after each sentence end; a trailing fragment is its own piece.

    Not after an abbreviation, and not inside a quotation: every piece but a last
    fragment closes the quotation marks it opens.
    """
    pieces, start = [], 0
    depths = _quote_depths(text)
    for end in _SENTENCE_END.finditer(text):
        if depths[end.end()] or not _ends_sentence(text, end):
            continue
        pieces.append(text[start:end.end()])
        start = end.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _ends_sentence(text: str, end: re.Match) -> bool:
    word = _WORD_BEFORE_STOP.search(text, max(0, end.start() - 20), end.end())
    if word is None or not end.group().startswith("."):
        return True
    abbreviation = word.group(1).lower()
    if abbreviation in NEVER_ENDS:
        return False
    if abbreviation in MAY_END or _INITIALISM.fullmatch(abbreviation):
        following = text[end.end():end.end() + 1]
        return not (following.islower() or following.isdigit())
    return True


def _open_quotes(text: str) -> list[str]:
    """The quotation marks ``text`` leaves open, innermost last."""
    return _quote_walk(text)[-1]


def _quote_depths(text: str) -> list[int]:
    """How many quotations are open before each position of ``text`` (and at its end)."""
    return [len(stack) for stack in _quote_walk(text)]


def _quote_walk(text: str) -> list[list[str]]:
    """The open quotation marks before each position of ``text`` and at its end."""
    stack: list[str] = []
    states: list[list[str]] = [[]]
    for index, char in enumerate(text):
        before = text[index - 1] if index else " "
        after = text[index + 1] if index + 1 < len(text) else " "
        if char == "'":  # a quotation mark only around words, else an apostrophe: "don't"
            closing = "'" in stack and not before.isspace() and not after.isalnum()
            opening = not closing and not before.isalnum() and after.isalnum()
        else:
            closing = any(QUOTES[opened] == char for opened in stack)
            opening = not closing and char in QUOTES
        if closing:
            while QUOTES[stack.pop()] != char:
                pass
        elif opening:
            stack.append(char)
        states.append(list(stack))
    return states


def _clause_cut(sentence: str) -> list[str]:
    """``sentence`` cut after each of its clauses but the last, longest first, each made
    to end with an ellipsis and to close the quotations it opened."""
    ends = [match.end() for match in _CLAUSE_END.finditer(sentence)
            if match.end() < len(sentence.rstrip())]
    open_quotes = _quote_walk(sentence)
    first_not_gsm7 = next((index for index, char in enumerate(sentence)
                           if char not in GSM7_BASIC and char not in GSM7_EXTENSION),
                          len(sentence))
    cuts = []
    for end in reversed(ends):
        kept = sentence[:end].rstrip().rstrip("，、；,;")
        if kept:
            ellipsis = "..." if len(kept) <= first_not_gsm7 else "…"
            closing = "".join(QUOTES[quote] for quote in reversed(open_quotes[len(kept)]))
            cuts.append(kept + ellipsis + closing)
    return cuts


def _join(parts: Sequence[str]) -> str:
    return " ".join(part for part in parts if part)


def fit(head: str, parts: Sequence[str], tail: str, *,
        max_segments: int = DEFAULT_MAX_SEGMENTS) -> str:
    """``head``, ``parts`` and ``tail`` joined, within ``max_segments`` if possible.

    Whole sentences are dropped from the end of the first part, then of the
    next, until the text fits; a part down to its first sentence keeps as many
    of that sentence's clauses as fit before it is dropped. ``head`` and
    ``tail`` are never touched, so a text whose head and tail alone exceed the
    budget comes back over it.
    """
    kept = [sentences(part) for part in parts]

    def joined() -> str:
        return _join([head, *("".join(pieces).rstrip() for pieces in kept), tail])

    def fits() -> bool:
        return segments(joined()) <= max_segments

    for index, whole in enumerate(kept):
        if fits():
            break

        def with_sentences(count: int) -> bool:
            kept[index] = whole[:count]
            return fits()

        if not with_sentences(0):
            continue  # over even without this part: the next one gives way too
        count = _most_that_fit(len(whole), with_sentences)
        kept[index] = whole[:count]
        if count == 0 and whole:
            cuts = _clause_cut(whole[0])[::-1]  # shortest first

            def with_cut(count: int) -> bool:
                kept[index] = cuts[count - 1:count]
                return fits()

            best = _most_that_fit(len(cuts), with_cut)
            kept[index] = cuts[best - 1:best]
    return joined()


def _most_that_fit(count: int, fits_with: Callable[[int], bool]) -> int:
    """The largest n in 0..``count`` for which ``fits_with(n)``, by bisection: adding text
    never takes fewer parts, and counting the parts of a long text hundreds of times, once
    per sentence dropped, took seconds. ``fits_with(0)`` must hold."""
    fitting, over = 0, count + 1
    while over - fitting > 1:
        middle = (fitting + over) // 2
        fitting, over = (middle, over) if fits_with(middle) else (fitting, middle)
    return fitting


def _link(language: str, label_key: str, url: str) -> str:
    return f"{phrase(language, label_key)}: {url}"


def render(announcement: AnnouncementView, language: str, context: RenderContext, *,
           max_segments: int = DEFAULT_MAX_SEGMENTS) -> Rendered:
    head = (signature(language, context) + marker(language, announcement.status, announcement.msg_type)
            + severity.tag(announcement, language) + announcement.headline)
    parts = [announcement.body, announcement.instruction]
    url = context.full_text_url(announcement.id)
    text = _join([head, *parts, _link(language, "details", url)])
    shortened = segments(text) > max_segments
    if shortened:
        # "Full text" rather than "Details": the reader should know words are missing.
        text = fit(head, parts, _link(language, "full_text", url), max_segments=max_segments)
    return Rendered("sms", language, text,
                    {**describe(text), "shortened": shortened, "max_segments": max_segments})


def signature(language: str, context: RenderContext) -> str:
    """What opens the SMS: the Latin signature for a Latin-script language when one is set
    (GSM-7 keeps an English SMS at a third of the parts), else the 【Chinese】 one."""
    if script(language) == "Latn" and context.sms_signature_latin:
        return f"[{context.sms_signature_latin}] "
    return f"【{context.sms_signature}】" if context.sms_signature else ""
