"""Residents as the channel policy sees them, and the roster file.

Roster columns (a CSV or workbook read by ``audiences.roster_files``; any
order; each column named as below or by one of its Chinese names in
``audiences.roster_headers``; a column not listed is ignored, with a note;
a column left out is empty on every row):

================  ========  ==================================================
column            required  accepted values; what an empty cell means
================  ========  ==================================================
name              yes       up to 100 characters
phone             one of    any valid number, normalised to E.164 with
wechat_openid     the two   ``phonenumbers`` (region CN: ``13800138000`` →
                            ``+8613800138000``); an openid is 1–64 letters,
                            digits, ``-`` or ``_``
area_code         yes       a 6/9/12-digit code in the area registry
birth_year        no        1900 … this year (or a date in it); empty: unknown
visually_impaired no        boolean; empty: no
hearing_impaired  no        boolean; empty: no
has_smartphone    no        boolean; empty: yes if the row has a WeChat
                            openid (WeChat needs a smartphone), otherwise no —
                            so an unknown resident gets voice and SMS, the
                            channels that reach any phone
language          no        the written language (SMS, WeChat): a BCP 47 tag
                            (``zh-CN``, ``zh-Hans``, ``cmn``, ``yue``, ``za``,
                            ``en-US``, …) kept in its canonical form
                            (``messages.languages.canonical``: ``zh``,
                            ``yue``, ``za``, ``en``); empty: ``zh``
spoken_language   no        the language calls speak, a tag as above;
                            empty: the written language
opt_out           no        ``;``-separated personal channels: sms, voice,
                            wechat (the village loudspeaker is not personal
                            and cannot be opted out of); empty: none
test_audience     no        boolean; empty: no
grid              no        the grid (网格) they live in: a 15-digit grid code
                            in the registry, in the row's village (its first
                            12 digits are the row's area_code); empty: none
================  ========  ==================================================

Booleans are ``1``/``0``, ``true``/``false``, ``yes``/``no`` or ``是``/``否``, in
any letter case.

A leading ``'`` (a spreadsheet's mark for "keep as text") is dropped from
every cell but a name. A phone or openid already on an earlier line is an
error: one person is one row.

An import is all or nothing: every bad row is reported (line as a spreadsheet
numbers it, the header being line 1, and the column by the file's own
header), and a file with any error yields no residents.
"""
from __future__ import annotations

import csv
import itertools
import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO

from audiences.areas import CsvErrors, CsvSource, ErrorCollector, RowError, village_of_grid
from audiences.roster_cells import parse_cells
from audiences.roster_files import open_sheet
from audiences.roster_headers import HEADER_NAMES, field_for
from channels.registry import PERSONAL_CHANNELS

__all__ = [
    "CsvErrors", "PERSONAL_CHANNELS", "REQUIRED_COLUMNS", "ROSTER_COLUMNS", "ResidentProfile",
    "Roster", "RowError", "check_roster_csv", "iter_roster", "parse_resident", "read_roster_csv", "write_roster_csv",
]

ROSTER_COLUMNS = (
    "name", "phone", "wechat_openid", "area_code", "birth_year", "visually_impaired",
    "hearing_impaired", "has_smartphone", "language", "opt_out", "test_audience", "spoken_language", "grid",
)
#: Besides these, a roster needs ``phone`` or ``wechat_openid`` (or both).
REQUIRED_COLUMNS = ("name", "area_code")


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
    language: str = "zh"  # written: SMS and WeChat
    spoken_language: str = ""  # calls; empty: the written language
    opt_out: frozenset[str] = frozenset()
    test_audience: bool = False
    grid: str | None = None  # a grid code in the registry, in their village

    def __post_init__(self):
        if not self.spoken_language:
            object.__setattr__(self, "spoken_language", self.language)

    def age(self, today_year: int) -> int | None:
        """Age reached in ``today_year``, or ``None`` when the birth year is unknown."""
        return None if self.birth_year is None else today_year - self.birth_year


class Roster:
    """A roster file opened for import: how it was read and understood, then its residents.

    Opening reads the header (``CsvErrors`` if it lacks a required column or
    names one twice); ``encoding``, ``columns`` (each header as the file wrote
    it, with the field it names or ``None``), ``ignored`` (those headers naming
    none) and ``notes`` (the same, as sentences) describe the reading. ``residents()`` then reads the rows once.
    """

    def __init__(self, source: CsvSource, *, known_area: Callable[[str], bool], sheet: str | None = None):
        self._errors = ErrorCollector()
        opened = open_sheet(source, self._errors, sheet=sheet)
        self.encoding = opened.encoding
        self.columns = [(label.strip(), field_for(label)) for label in opened.header]
        self._label = _check_header(self.columns)
        #: Headers of the columns the roster does not use (read past, noted).
        self.ignored = [label for label, field in self.columns if field is None and label]
        self.notes = [f"column {label!r} is not a roster column and was ignored" for label in self.ignored]
        self._rows = opened.rows
        self._known_area = known_area

    def cells(self) -> Iterator[tuple[int, dict[str, str]]]:
        """``(line, {field: cell})`` for every non-blank row; a field the file lacks is empty."""
        width = len(self.columns)
        used = [(position, field) for position, (_, field) in enumerate(self.columns) if field is not None]
        for line, fields in self._rows:
            if not "".join(fields).strip():
                continue
            if len(fields) > width and "".join(fields[width:]).strip():
                self._errors.add(line, None, f"has a value beyond the last of the {width} columns of the header")
                continue
            row = dict.fromkeys(ROSTER_COLUMNS, "")
            for position, field in used:
                if position < len(fields):
                    row[field] = fields[position]
            yield line, row

    def preview(self, count: int) -> list[tuple[int, dict[str, str], list[RowError]]]:
        """The first ``count`` rows as understood: cells by field and the problems of each row."""
        shown = []
        for line, row in self.cells():
            errors = ErrorCollector()
            _parse_row(line, row, errors, self._known_area, self._label)
            shown.append((line, row, errors.errors))
            if len(shown) == count:
                break
        return shown

    def residents(self) -> Iterator[tuple[int, ResidentProfile]]:
        """``(line, profile)`` for each row while every row so far was good; ``CsvErrors`` at the end.

        A phone or openid already on an earlier line is an error on the later
        one: two rows for one person would send them everything twice. Those
        are found at the end (the rows repeating one were yielded meanwhile).
        """
        errors = self._errors
        seen = {"phone": _Seen(), "wechat_openid": _Seen()}
        for line, row in self.cells():
            profile = _parse_row(line, row, errors, self._known_area, self._label)
            if profile is None:
                continue
            for field, values in seen.items():
                value = getattr(profile, field)
                if value is not None:
                    values.add(value, line)
            if not errors:
                yield line, profile
        for field, values in seen.items():
            for line, value, first in values.repeats():
                errors.add(line, self._label(field), f"{value} is already on line {first}")
        errors.errors.sort(key=lambda error: error.line or 0)  # as the rows came, header first
        errors.raise_if_any()


class _Seen:
    """The phones or openids of a roster with their lines, in about 40 bytes each (a million
    in a dict took 200 MB): each value's 64-bit hash and its line in arrays, the value itself
    in one byte string, to tell a repeat from a hash collision at the end."""

    def __init__(self) -> None:
        self._hashes = array("q")
        self._lines = array("I")
        self._ends = array("Q")
        self._values = bytearray()

    def add(self, value: str, line: int) -> None:
        self._hashes.append(hash(value))
        self._lines.append(line)
        self._values += value.encode()
        self._ends.append(len(self._values))

    def repeats(self) -> Iterator[tuple[int, str, int]]:
        """``(line, value, first line)`` for each value on an earlier line too, by line."""
        shared: set[int] = set()
        # A sixteenth of the hashes at a time: sorting them all made a Python int of each
        # (40 MB at a million, the import's peak).
        for bucket in range(16):
            ordered = sorted(hashed for hashed in self._hashes if hashed % 16 == bucket)
            shared.update(first for first, second in itertools.pairwise(ordered) if first == second)
        first_line: dict[str, int] = {}
        for index, hashed in enumerate(self._hashes):
            if hashed in shared:
                value = self._value(index)
                first = first_line.setdefault(value, self._lines[index])
                if first != self._lines[index]:
                    yield self._lines[index], value, first

    def _value(self, index: int) -> str:
        start = self._ends[index - 1] if index else 0
        return self._values[start:self._ends[index]].decode()


def _check_header(columns: list[tuple[str, str | None]]) -> Callable[[str], str]:
    """Raise ``CsvErrors`` for missing or repeated fields; return field → the file's header for it."""
    label_of: dict[str, str] = {}
    problems = []
    for label, field in columns:
        if field is None:
            continue
        if field in label_of:
            problems.append(RowError(1, label, f"names the same column ({field}) as {label_of[field]!r}"))
        else:
            label_of[field] = label
    if not any(label for label, _ in columns):
        problems.append(RowError(1, None, "the header row is empty; it needs at least "
                                          "name, area_code and phone or wechat_openid"))
    else:
        for field in REQUIRED_COLUMNS:
            if field not in label_of:
                problems.append(RowError(1, field, "missing column (also accepted: "
                                                   f"{', '.join(HEADER_NAMES[field][1:])})"))
        if "phone" not in label_of and "wechat_openid" not in label_of:
            problems.append(RowError(1, "phone", "missing column: a roster needs phone or wechat_openid"))
    if problems:
        raise CsvErrors(problems)
    return lambda field: label_of.get(field, field)


def iter_roster(source: CsvSource, *, known_area: Callable[[str], bool]) -> Iterator[ResidentProfile]:
    """Stream a roster file, one ``ResidentProfile`` per good row (see ``Roster.residents``).

    So a caller that writes as it reads must do it in one transaction and
    roll back on ``CsvErrors``.
    """
    for _, profile in Roster(source, known_area=known_area).residents():
        yield profile


def parse_resident(cells: Mapping[str, str], *,
                   known_area: Callable[[str], bool]) -> ResidentProfile:
    """One resident from roster cells (an edit form's fields), checked by the roster's rules.

    A missing cell counts as empty. Raises ``CsvErrors`` naming every bad cell,
    reported as line 2, as for a roster of one row.
    """
    errors = ErrorCollector()
    row = {column: cells.get(column, "") for column in ROSTER_COLUMNS}
    profile = _parse_row(2, row, errors, known_area, str)
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
        profile.spoken_language, profile.grid or "",
    ]


def _parse_row(line: int, row: dict[str, str], errors: ErrorCollector,
               known_area: Callable[[str], bool], label: Callable[[str], str]) -> ResidentProfile | None:
    # A leading ' is how spreadsheets keep a number as text; only a name may start with one.
    cells = {column: _unquote(column, cell.strip()) if cell else cell for column, cell in row.items()}
    values, problems = parse_cells(cells)
    if "area_code" in values and not known_area(values["area_code"]):
        problems.append(("area_code", f"area {values['area_code']} is not in the area registry"))
    problems += _grid_problems(values, known_area)
    if not cells["phone"] and not cells["wechat_openid"]:
        problems.append(("phone", "a resident needs a phone or a wechat_openid; both are empty"))
    for column, message in problems:
        errors.add(line, label(column), message)
    if problems:
        return None
    if values["has_smartphone"] is None:
        values["has_smartphone"] = values["wechat_openid"] is not None
    if values["spoken_language"] is None:
        values["spoken_language"] = values["language"]
    return ResidentProfile(**values)


def _grid_problems(values: dict, known_area: Callable[[str], bool]) -> list[tuple[str, str]]:
    """A grid must be registered (``known_area`` knows grid codes too) and in the row's village."""
    grid = values.get("grid")
    if not grid:
        return []
    if not known_area(grid):
        return [("grid", f"grid {grid} is not in the grid registry")]
    if "area_code" in values and village_of_grid(grid) != values["area_code"]:
        return [("grid", f"grid {grid} is in village {village_of_grid(grid)}, "
                         f"not in {values['area_code']}")]
    return []


def _unquote(column: str, cell: str) -> str:
    return cell[1:].strip() if column != "name" and cell.startswith("'") else cell
