"""Language tags as people write them (BCP 47), brought to the one form the gateway keeps.

Rosters say ``zh``, ``zh-CN`` or ``zh-Hans``, CAP feeds ``zh-CN`` or ``en-US``, linguists
``cmn`` or ``zh-yue``. ``canonical`` turns every such tag into
its **language subtag, macrolanguage-resolved** (``langcodes.standardize_tag(macro=True)``,
then the language part alone), lower case:

* ``zh``, ``zh-CN``, ``zh-Hans``, ``zh-TW``, ``cmn``, ``cmn-Hans-CN`` → ``zh`` (Mandarin
  when spoken, standard written Chinese when read);
* ``yue``, ``zh-yue`` → ``yue`` (Cantonese); ``hak``, ``zh-hakka`` → ``hak`` (Hakka);
* ``za`` → ``za`` (Zhuang); ``en``, ``en-US``, ``en-GB`` → ``en``.

Region and script are dropped: the gateway has one text and one voice per language, and
the stored values ``zh`` and ``en`` of earlier versions are already canonical. A tag
that is malformed (``xx-!!``) or names no language in the IANA registry (``xx``,
``und``) is refused with ``LanguageError``; a known language the gateway has no text or
voice for (``za``, ``fr``) is accepted — what to do with it is the caller's decision.
"""
from __future__ import annotations

import functools

import langcodes
from langcodes.data_dicts import MACROLANGUAGES

#: The canonical form of the Chinese the gateway writes and Mandarin it speaks.
CHINESE = "zh"


#: ISO 639's codes for "undetermined", "multiple", "uncoded" and "no linguistic content".
_SPECIAL = frozenset({"und", "mul", "mis", "zxx"})
#: Longer than any tag a person writes (RFC 5646 asks for at least 35 characters to be kept).
MAX_TAG_LENGTH = 64
#: A tag is quoted back in an error up to this many characters.
_SHOWN = 40


class LanguageError(ValueError):
    """A tag that is not a BCP 47 language tag naming a known language."""


def canonical(tag: str) -> str:
    """The canonical language of a BCP 47 tag (see the module's text); ``LanguageError`` if none."""
    text = tag.strip()
    if len(text) > MAX_TAG_LENGTH:
        raise LanguageError(f"{_shown(tag)} is longer than a language tag ({MAX_TAG_LENGTH} characters)")
    return _canonical(text)


@functools.lru_cache(maxsize=1024)  # a roster repeats a handful of tags 100,000 times
def _canonical(tag: str) -> str:
    text = tag
    try:
        language = langcodes.Language.get(langcodes.standardize_tag(text, macro=True))
    except (langcodes.LanguageTagError, ValueError):
        raise LanguageError(f"{_shown(tag)} is not a language tag (BCP 47, e.g. zh-CN, yue, en)") from None
    code = language.language or ""
    # Private use (x-…), the special codes (undetermined, multiple, uncoded, no linguistic
    # content) and unassigned codes name no language.
    if not (code.isalpha() and len(code) <= 3) or code in _SPECIAL or not language.is_valid():
        raise LanguageError(f"{_shown(tag)} names no known language (BCP 47, e.g. zh-CN, yue, en)")
    return code.lower()


def _shown(tag: str) -> str:
    return repr(tag if len(tag) <= _SHOWN else tag[:_SHOWN] + "…")


@functools.lru_cache(maxsize=256)
def script(language: str) -> str:
    """The script a canonical language is most likely written in (ISO 15924: ``Hans``, ``Hant``,
    ``Latn``, …; CLDR's likely subtags): ``zh`` and ``hak`` Hans, ``yue`` Hant, ``za`` and ``es``
    Latn."""
    return langcodes.Language.get(language).maximize().script or ""


def writes_han(language: str) -> bool:
    """Whether a text in ``language`` is written in Chinese characters (its length is counted
    in characters, not words)."""
    return script(language) in ("Hans", "Hant")


def macrolanguage(language: str) -> str:
    """The macrolanguage a canonical language belongs to (``yue``, ``hak`` → ``zh``), else itself."""
    return MACROLANGUAGES.get(language, language)


def reads_aloud(spoken: str, text_language: str) -> bool:
    """Whether a voice of ``spoken`` can read a text in ``text_language`` (canonical forms):
    its own, or its macrolanguage's — ``yue`` and ``hak`` read Chinese (``zh``) in Cantonese
    and Hakka, as the people who speak them read standard written Chinese."""
    return spoken == text_language or macrolanguage(spoken) == text_language
