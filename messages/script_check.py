"""Whether a notice's text is written in the script of the language chosen for it.

A notice typed in English but marked Chinese gets Chinese fixed wording around English text
and is read by the Mandarin voice (and the reverse): the compose page warns of it. Han
characters against Latin letters is enough to tell the languages the gateway writes in.
"""
from __future__ import annotations

import unicodedata

from messages.languages import writes_han

#: Latin letters a text in a Han-written language may hold without looking foreign (PM2.5, 110).
FEW_LETTERS = 3


def _is_han(char: str) -> bool:
    return unicodedata.name(char, "").startswith("CJK UNIFIED IDEOGRAPH")


def script_mismatch(text: str, language: str) -> bool:
    """True when ``text`` does not look written in ``language``'s script: no Han character
    among several Latin letters for Chinese, more Han characters than letters for English."""
    han = sum(1 for char in text if _is_han(char))
    latin = sum(1 for char in text if char.isascii() and char.isalpha())
    if writes_han(language):
        return han == 0 and latin >= FEW_LETTERS
    return han > latin
