"""Roster CSV cells one at a time: what each column accepts, and what an empty cell means.

The columns and their rules are listed in ``audiences.residents``, which reads
the rows; these are the parsers behind that table.
"""
from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Mapping

import phonenumbers

from audiences.areas import AreaError, normalize, normalize_grid
from channels.registry import PERSONAL_CHANNELS
from messages.languages import CHINESE, LanguageError, canonical

NAME_MAX_LENGTH = 100
EARLIEST_BIRTH_YEAR = 1900
PHONE_REGION = "CN"

_TRUE = frozenset({"1", "true", "yes", "是"})
_FALSE = frozenset({"0", "false", "no", "否"})
_OPENID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Chinese input methods type the full-width semicolon.
_OPT_OUT_SEPARATOR = re.compile(r"[;；]")
# What a spreadsheet makes of a long number in a column not formatted as text.
_SCIENTIFIC = re.compile(r"\d(\.\d+)?[eE]\+?\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A mainland mobile as rosters mostly hold it: 11 digits, or already in E.164.
_MOBILE_FORM = re.compile(r"(?:\+86)?(1\d{10})")
_CN = phonenumbers.PhoneMetadata.metadata_for_region(PHONE_REGION)
_CN_PREFIX_FOR_PARSING = re.compile(_CN.national_prefix_for_parsing)
_CN_NUMBER = re.compile(_CN.general_desc.national_number_pattern)
_CN_MOBILE = re.compile(_CN.mobile.national_number_pattern)


def parse_cells(cells: Mapping[str, str]) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """Each column's value from its stripped cell, and ``(column, problem)`` for every bad cell.

    ``has_smartphone`` is ``None`` when its cell is empty: the default depends
    on the rest of the row.
    """
    values: dict[str, object] = {}
    problems: list[tuple[str, str]] = []
    for column, parse in _CELL_PARSERS:
        try:
            values[column] = parse(cells[column])
        except _BadCell as problem:
            problems.append((column, str(problem)))
    return values, problems


class _BadCell(ValueError):
    """A cell that cannot be used; the message says why."""


def _name(cell: str) -> str:
    if not cell:
        raise _BadCell("is empty")
    if len(cell) > NAME_MAX_LENGTH:
        raise _BadCell(f"is longer than {NAME_MAX_LENGTH} characters")
    return cell


def phone_number(cell: str) -> str | None:
    """A phone number as the roster takes it, in E.164; None for an empty cell. Raises
    ``ValueError`` saying what is wrong with it (also for a grid worker's phone)."""
    return _phone(cell.strip())


def _phone(cell: str) -> str | None:
    if not cell:
        return None
    mobile = _MOBILE_FORM.fullmatch(cell)
    if mobile and _plainly_valid_mobile(mobile[1]):
        return "+86" + mobile[1]
    if _SCIENTIFIC.fullmatch(cell):
        raise _BadCell(f"{cell!r} is a number the spreadsheet shortened; format the column as text")
    try:
        number = phonenumbers.parse(cell, PHONE_REGION)
    except phonenumbers.NumberParseException:
        raise _BadCell(f"{cell!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise _BadCell(f"{cell!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _plainly_valid_mobile(digits: str) -> bool:
    """Whether ``phonenumbers`` would take these 11 digits as they are for a valid CN mobile.

    The same metadata, checked directly: ``parse`` keeps digits that its carrier-prefix rule
    does not match, and ``is_valid_number`` holds for a number matching the region's general
    pattern and the mobile pattern. A fortieth of the library's time per row; any other
    number (``False``) goes the library's whole way."""
    return (_CN_PREFIX_FOR_PARSING.match(digits) is None and len(digits) in _CN.mobile.possible_length
            and _CN_NUMBER.fullmatch(digits) is not None and _CN_MOBILE.fullmatch(digits) is not None)


def _openid(cell: str) -> str | None:
    if not cell:
        return None
    if not _OPENID.fullmatch(cell):
        raise _BadCell(f"{cell!r} is not a WeChat openid (1-64 letters, digits, - or _)")
    return cell


@functools.lru_cache(maxsize=4096)  # a roster names each of its villages a thousand times
def _area_code(cell: str) -> str:
    try:
        return normalize(cell)
    except AreaError as error:
        raise _BadCell(str(error)) from None


@functools.lru_cache(maxsize=8192)  # and each of their grids hundreds of times
def _grid(cell: str) -> str | None:
    """A grid code (``audiences.areas.normalize_grid``); empty: no grid."""
    if not cell:
        return None
    try:
        return normalize_grid(cell)
    except AreaError as error:
        raise _BadCell(str(error)) from None


def _birth_year(cell: str) -> int | None:
    if not cell:
        return None
    if _DATE.fullmatch(cell):  # a birth date, as a workbook's date cell reads
        cell = cell[:4]
    if not (cell.isascii() and cell.isdigit()):
        raise _BadCell(f"{cell!r} is not a year")
    year = int(cell)
    this_year = datetime.date.today().year
    if not EARLIEST_BIRTH_YEAR <= year <= this_year:
        raise _BadCell(f"{year} is not between {EARLIEST_BIRTH_YEAR} and {this_year}")
    return year


def _flag(cell: str) -> bool | None:
    answer = cell.lower()
    if not answer:
        return None
    if answer in _TRUE:
        return True
    if answer in _FALSE:
        return False
    raise _BadCell(f"{cell!r} is not a yes/no value (1/0, true/false, yes/no, 是/否)")


def _flag_default_false(cell: str) -> bool:
    return bool(_flag(cell))


def _language(cell: str) -> str:
    """A BCP 47 tag in its canonical form (``messages.languages``); empty: Chinese."""
    if not cell:
        return CHINESE
    try:
        return canonical(cell)
    except LanguageError as error:
        raise _BadCell(str(error)) from None


def _spoken_language(cell: str) -> str | None:
    """Like ``language``; ``None`` when empty: the row's written language (see ``parse_resident``)."""
    return _language(cell) if cell else None


def _opt_out(cell: str) -> frozenset[str]:
    if not cell:
        return _NONE
    channels = frozenset(part.strip().lower() for part in _OPT_OUT_SEPARATOR.split(cell) if part.strip())
    if "loudspeaker" in channels:
        raise _BadCell("loudspeaker cannot be opted out of: the village loudspeaker serves everyone, not one person")
    unknown = sorted(channels - set(PERSONAL_CHANNELS))
    if unknown:
        raise _BadCell(f"{', '.join(map(repr, unknown))} is not a channel ({', '.join(PERSONAL_CHANNELS)})")
    return channels


_NONE: frozenset[str] = frozenset()

# Column order here is the order errors are reported within a row.
_CELL_PARSERS: tuple[tuple[str, Callable[[str], object]], ...] = (
    ("name", _name),
    ("phone", _phone),
    ("wechat_openid", _openid),
    ("area_code", _area_code),
    ("birth_year", _birth_year),
    ("visually_impaired", _flag_default_false),
    ("hearing_impaired", _flag_default_false),
    ("has_smartphone", _flag),
    ("language", _language),
    ("spoken_language", _spoken_language),
    ("opt_out", _opt_out),
    ("test_audience", _flag_default_false),
    ("grid", _grid),
)
