"""What an announcement is: its fields, aligned with CAP 1.2, and their validation.

Validation lives here so that every way in (the JSON API, the console's form, a
CAP document) refuses the same things with the same words. Errors name the
field, so a caller can say exactly what is wrong and where.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from messages.languages import LanguageError, canonical

STATUSES = ("actual", "exercise", "test", "draft")
DRILL_STATUSES = ("exercise", "test")
MSG_TYPES = ("alert", "update", "cancel")
SEVERITIES = ("extreme", "severe", "moderate", "minor")
URGENCIES = ("immediate", "expected", "future", "past", "unknown")
CERTAINTIES = ("observed", "likely", "possible", "unlikely", "unknown")
CATEGORIES = ("geo", "met", "safety", "security", "rescue", "fire", "health", "env",
              "transport", "infra", "cbrne", "other")
CHANNELS = ("sms", "voice", "wechat", "loudspeaker")
#: The languages the gateway has its own fixed wording for (``messages.phrases``), offered
#: first by the console. An announcement and its translations may be in any language
#: (canonical forms, ``messages.languages``); a text in another gets these words
#: (``phrases.wording_language``).
LANGUAGES = ("zh", "en")

LIMITS = {"headline": 140, "body": 4000, "instruction": 1000, "event": 100}
LATEST_EXPIRY = timedelta(days=3653)  # ten years ahead; past that an expiry is a mistake
# Taken out of every text: control characters but tab and line ends (NUL, ESC, DEL, the C1
# range), bidi embeddings, overrides and isolates (they make text display other than it
# reads: "Trojan Source") and byte order marks.
UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
# Letters that draw nothing (Hangul fillers, the blank Braille pattern).
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
AREA_CODE = re.compile(r"^(\d{6}|\d{9}|\d{12})$")


class ValidationError(ValueError):
    """Bad input, with the name of the field it concerns.

    ``code`` and ``params`` say the same as ``message`` for a reader in another language: the
    console words each code in the officer's language (``gateway/web/console/wording.py``)
    instead of matching the English text. An error without a code is shown as its message.
    """

    def __init__(self, field_name: str, message: str, code: str | None = None, **params: Any):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message
        self.code = code
        self.params = params


@dataclass(frozen=True)
class Translation:
    """The texts of an announcement in a language other than its own."""

    language: str
    headline: str
    body: str
    instruction: str = ""
    event: str = ""


@dataclass
class AnnouncementInput:
    """A validated announcement, not yet stored."""

    headline: str
    body: str
    areas: list[str]
    instruction: str = ""
    event: str = ""
    category: str = "other"
    severity: str = "moderate"
    urgency: str = "expected"
    certainty: str = "likely"
    status: str = "actual"
    msg_type: str = "alert"
    references: str | None = None
    language: str = "zh"
    channels: list[str] = field(default_factory=lambda: list(CHANNELS))
    expires: datetime | None = None
    translations: list[Translation] = field(default_factory=list)


def is_drill(status: str) -> bool:
    return status in DRILL_STATUSES


def parse_announcement(data: Any, *, now: datetime | None = None) -> AnnouncementInput:
    """Check a JSON-like mapping and return the announcement it describes.

    Enumerations are accepted in any letter case (CAP writes ``Extreme``) and
    kept in lower case.
    """
    if not isinstance(data, Mapping):
        raise ValidationError("(body)", "expected a JSON object with the announcement's fields")
    unknown = sorted(set(data) - _KNOWN_FIELDS)
    if unknown:
        raise ValidationError(unknown[0], "is not a field of an announcement", "unknown_field")
    now = now or datetime.now(timezone.utc)
    language = _language(data, "language", "zh")
    return AnnouncementInput(
        headline=_text(data, "headline", required=True),
        body=_text(data, "body", required=True),
        instruction=_text(data, "instruction"),
        event=_text(data, "event"),
        category=_choice(data, "category", CATEGORIES, "other"),
        severity=_choice(data, "severity", SEVERITIES, "moderate"),
        urgency=_choice(data, "urgency", URGENCIES, "expected"),
        certainty=_choice(data, "certainty", CERTAINTIES, "likely"),
        status=_choice(data, "status", STATUSES, "actual"),
        msg_type=_choice(data, "msg_type", MSG_TYPES, "alert"),
        references=_text(data, "references") or None,
        language=language,
        areas=parse_area_list(data.get("areas")),
        channels=_channels(data.get("channels")),
        expires=_expires(data.get("expires"), now),
        translations=_translations(data.get("translations"), language),
    )


_KNOWN_FIELDS = {"headline", "body", "instruction", "event", "category", "severity", "urgency",
                 "certainty", "status", "msg_type", "references", "language", "areas", "channels",
                 "expires", "translations"}
_TRANSLATION_FIELDS = {"language", "headline", "body", "instruction", "event"}


def _text(data: Mapping, name: str, *, required: bool = False) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ValidationError(name, "is required", "required")
        return ""
    if not isinstance(value, str):
        raise ValidationError(name, f"must be text, not {type(value).__name__}", "not_text")
    text = clean_text(value)
    if not visible(text):
        if value.strip():
            raise ValidationError(name, "has no visible character: only spaces, zero-width, "
                                  "direction or control characters", "invisible")
        if required:
            raise ValidationError(name, "is required", "required")
        return ""
    value = text
    limit = LIMITS.get(name)
    if limit and len(value) > limit:
        raise ValidationError(name, f"is {len(value)} characters long; the limit is {limit}",
                              "too_long", length=len(value), limit=limit)
    return value


def clean_text(value: str) -> str:
    """Notice text as it is kept: without ``UNWANTED`` characters, stripped at both ends."""
    return UNWANTED.sub("", value).strip()


def visible(text: str) -> bool:
    """Whether ``text`` draws anything: not only spaces, format (zero-width), control or
    combining characters."""
    return any(unicodedata.category(char)[0] not in "CZM" and char not in BLANK_LETTERS
               or unicodedata.category(char) in ("Co", "Cn") for char in text)


def _choice(data: Mapping, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = data.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str) or value.strip().lower() not in allowed:
        raise ValidationError(name, f"{value!r} is not one of {', '.join(allowed)}", "not_one_of",
                              value=str(value))
    return value.strip().lower()


def _language(data: Mapping, name: str, default: str) -> str:
    """A BCP 47 tag (``zh-CN``, ``cmn``, ``yue``, ``es-US``, …) in its canonical form."""
    value = data.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ValidationError(name, f"{value!r} is not a language tag (e.g. zh-CN, en)",
                              "not_language", value=str(value))
    try:
        return canonical(value)
    except LanguageError as error:
        raise ValidationError(name, str(error), "not_language", value=value[:40]) from None


def parse_area_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValidationError("areas", "give a non-empty list of administrative area codes",
                              "no_areas")
    codes = []
    for index, code in enumerate(value):
        if not isinstance(code, str) or not AREA_CODE.match(code.strip()):
            raise ValidationError(f"areas[{index}]", f"{code!r} is not an administrative code "
                                  "(6, 9 or 12 digits)", "not_area_code", value=str(code)[:40])
        if code.strip() not in codes:
            codes.append(code.strip())
    return codes


def _channels(value: Any) -> list[str]:
    if value is None:
        return list(CHANNELS)
    if not isinstance(value, list) or not value:
        raise ValidationError("channels", f"give a non-empty list of channel names from "
                              f"{', '.join(CHANNELS)}", "no_channels")
    names = []
    for index, name in enumerate(value):
        if not isinstance(name, str) or name.strip().lower() not in CHANNELS:
            raise ValidationError(f"channels[{index}]", f"{name!r} is not one of "
                                  f"{', '.join(CHANNELS)}", "not_one_of", value=str(name)[:40])
        if name.strip().lower() not in names:
            names.append(name.strip().lower())
    return names


def _translations(value: Any, primary: str) -> list[Translation]:
    """The texts in further languages: each language once, none in the primary one."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError("translations", "give a list of objects with language, headline "
                              "and body")
    translations: list[Translation] = []
    for index, item in enumerate(value):
        where = f"translations[{index}]"
        translation = _translation(item, where)
        if translation.language == primary:
            raise ValidationError(f"{where}.language", f"{primary} is the announcement's own "
                                  "language; its text is in headline and body", "own_language",
                                  value=primary)
        if translation.language in {t.language for t in translations}:
            raise ValidationError(f"{where}.language", f"a second translation in "
                                  f"{translation.language}; give each language once", "language_twice",
                                  value=translation.language)
        translations.append(translation)
    return translations


def _translation(item: Any, where: str) -> Translation:
    if not isinstance(item, Mapping):
        raise ValidationError(where, "expected an object with language, headline and body")
    unknown = sorted(set(item) - _TRANSLATION_FIELDS)
    try:
        if unknown:
            raise ValidationError(unknown[0], "is not a field of a translation")
        language = _language(item, "language", "")
        if not language:
            raise ValidationError("language", "is required", "required")
        return Translation(language=language, headline=_text(item, "headline", required=True),
                           body=_text(item, "body", required=True),
                           instruction=_text(item, "instruction"), event=_text(item, "event"))
    except ValidationError as error:
        raise ValidationError(f"{where}.{error.field}", error.message, error.code,
                              **error.params) from None


def _expires(value: Any, now: datetime) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError("expires", "must be an ISO 8601 date-time text", "not_time")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("expires", f"{value!r} is not an ISO 8601 date-time",
                              "not_time") from None
    if moment.tzinfo is None:
        raise ValidationError("expires", "needs a time zone offset, e.g. 2026-12-01T18:00:00+08:00",
                              "not_time")
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-08:00 is past year 9999 in UTC
        raise ValidationError("expires", f"{value!r} is out of range", "too_far") from None
    if moment <= now:
        raise ValidationError("expires", "is already past", "past")
    if moment > now + LATEST_EXPIRY:
        raise ValidationError("expires", f"is more than {LATEST_EXPIRY.days // 365} years ahead",
                              "too_far")
    return moment
