"""Residents as the channel policy sees them, and the roster CSV.

Roster CSV columns (UTF-8, with or without BOM; any order, every column
present, names as below in any letter case):

================  ========  ==================================================
column            required  accepted values; what an empty cell means
================  ========  ==================================================
name              yes       up to 100 characters
phone             one of    any valid number, normalised to E.164 with
wechat_openid     the two   ``phonenumbers`` (region CN: ``13800138000`` →
                            ``+8613800138000``); an openid is 1–64 letters,
                            digits, ``-`` or ``_``
area_code         yes       a 6/9/12-digit code in the area registry
birth_year        no        1900 … this year; empty: unknown
visually_impaired no        boolean; empty: no
hearing_impaired  no        boolean; empty: no
has_smartphone    no        boolean; empty: yes if the row has a WeChat
                            openid (WeChat needs a smartphone), otherwise no —
                            so an unknown resident gets voice and SMS, the
                            channels that reach any phone
language          no        ``zh`` or ``en``; empty: ``zh``
opt_out           no        ``;``-separated personal channels: sms, voice,
                            wechat (the village loudspeaker is not personal
                            and cannot be opted out of); empty: none
test_audience     no        boolean; empty: no
================  ========  ==================================================

Booleans are ``1``/``0``, ``true``/``false``, ``yes``/``no`` or ``是``/``否``, in
any letter case.

An import is all or nothing: every bad row is reported (line as a spreadsheet
numbers it, the header being line 1, and the column), and a file with any
error yields no residents.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO

from audiences.areas import (
    CsvErrors,
    CsvSource,
    ErrorCollector,
    RowError,
    csv_records,
    open_csv_text,
    read_header,
)
from audiences.roster_cells import LANGUAGES, parse_cells
from channels.registry import PERSONAL_CHANNELS

__all__ = [
    "CsvErrors", "LANGUAGES", "PERSONAL_CHANNELS", "ROSTER_COLUMNS", "ResidentProfile", "RowError",
    "check_roster_csv", "iter_roster", "parse_resident", "read_roster_csv", "write_roster_csv",
]

ROSTER_COLUMNS = (
    "name", "phone", "wechat_openid", "area_code", "birth_year", "visually_impaired",
    "hearing_impaired", "has_smartphone", "language", "opt_out", "test_audience",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResidentProfile:
    """One resident: who they are, where they live and what reaches them.

    ``phone`` is E.164 or ``None``; ``birth_year`` ``None`` when unknown;
    ``opt_out`` a set of personal channel names the resident declined.
    """

    name: str
    phone: str | None = None
    wechat_openid: str | None = None
    area_code: str
    birth_year: int | None = None
    visually_impaired: bool = False
    hearing_impaired: bool = False
    has_smartphone: bool = False
    language: str = "zh"
    opt_out: frozenset[str] = frozenset()
    test_audience: bool = False

    def age(self, today_year: int) -> int | None:
        """Age reached in ``today_year``, or ``None`` when the birth year is unknown."""
        return None if self.birth_year is None else today_year - self.birth_year


def iter_roster(source: CsvSource, *, known_area: Callable[[str], bool]) -> Iterator[ResidentProfile]:
    """Stream a roster CSV, one ``ResidentProfile`` per good row.

    ``known_area(code)`` says whether a normalised area code is registered.
    Profiles are yielded only while every row so far was good; after the
    first bad row the rest is still checked but nothing more is yielded.
    When the file is exhausted, ``CsvErrors`` is raised if any row was bad.
    So a caller that writes as it reads must do it in one transaction and
    roll back on ``CsvErrors``.
    """
    errors = ErrorCollector()
    with open_csv_text(source) as text:
        columns = read_header(text, ROSTER_COLUMNS)
        for line, row in csv_records(text, columns, errors):
            profile = _parse_row(line, row, errors, known_area)
            if profile is not None and not errors:
                yield profile
    errors.raise_if_any()


def parse_resident(cells: Mapping[str, str], *,
                   known_area: Callable[[str], bool]) -> ResidentProfile:
    """One resident from roster cells (an edit form's fields), checked by the roster's rules.

    A missing cell counts as empty. Raises ``CsvErrors`` naming every bad cell,
    reported as line 2, as for a roster of one row.
    """
    errors = ErrorCollector()
    row = {column: cells.get(column, "") for column in ROSTER_COLUMNS}
    profile = _parse_row(2, row, errors, known_area)
    errors.raise_if_any()
    return profile


def read_roster_csv(source: CsvSource, *, known_area: Callable[[str], bool]) -> list[ResidentProfile]:
    """Every resident in the file, or ``CsvErrors`` naming every bad row."""
    return list(iter_roster(source, known_area=known_area))


def check_roster_csv(source: CsvSource, *, known_area: Callable[[str], bool]) -> int:
    """Validate the whole file in bounded memory; return how many residents it holds.

    Raises ``CsvErrors`` like ``iter_roster``. Lets a caller validate fully,
    then reopen the file and insert from ``iter_roster`` in chunks.
    """
    return sum(1 for _ in iter_roster(source, known_area=known_area))


def write_roster_csv(profiles: Iterable[ResidentProfile], target: str | os.PathLike | IO[str]) -> int:
    """Write profiles as a roster CSV that ``iter_roster`` reads back; return the count.

    A path is written with a BOM, so Excel on Chinese Windows shows the names
    correctly; a text file the caller opened is written as it is.
    """
    if isinstance(target, (str, os.PathLike)):
        with open(target, "w", encoding="utf-8-sig", newline="") as text:
            return _write_rows(profiles, text)
    return _write_rows(profiles, target)


def _write_rows(profiles: Iterable[ResidentProfile], text: IO[str]) -> int:
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(ROSTER_COLUMNS)
    count = 0
    for profile in profiles:
        writer.writerow(_cells(profile))
        count += 1
    return count


def _cells(profile: ResidentProfile) -> list[str]:
    def flag(value: bool) -> str:
        return "1" if value else "0"

    return [
        profile.name, profile.phone or "", profile.wechat_openid or "", profile.area_code,
        "" if profile.birth_year is None else str(profile.birth_year),
        flag(profile.visually_impaired), flag(profile.hearing_impaired), flag(profile.has_smartphone),
        profile.language, ";".join(sorted(profile.opt_out)), flag(profile.test_audience),
    ]


def _parse_row(line: int, row: dict[str, str], errors: ErrorCollector,
               known_area: Callable[[str], bool]) -> ResidentProfile | None:
    cells = {column: row[column].strip() for column in ROSTER_COLUMNS}
    values, problems = parse_cells(cells)
    if "area_code" in values and not known_area(values["area_code"]):
        problems.append(("area_code", f"area {values['area_code']} is not in the area registry"))
    if not cells["phone"] and not cells["wechat_openid"]:
        problems.append(("phone", "a resident needs a phone or a wechat_openid; both are empty"))
    for column, message in problems:
        errors.add(line, column, message)
    if problems:
        return None
    if values["has_smartphone"] is None:
        values["has_smartphone"] = values["wechat_openid"] is not None
    return ResidentProfile(**values)
