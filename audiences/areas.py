"""Chinese administrative area codes (GB/T 2260 style) and the area CSV.

A registry code is 6, 9 or 12 digits:

* 6 digits, county level as in GB/T 2260: ``450000`` is a province (ends in
  ``0000``), ``450700`` a prefecture (ends in ``00``), ``450702`` a county or
  district;
* 9 digits, a town or street office: ``450702100``;
* 12 digits, a village or community: ``450702100201``.

The parent follows from the code alone, and every code beneath an area starts
with that area's ``prefix``, so the gateway targets an area with
``area_code LIKE prefix || '%'``. Bare 2- or 4-digit prefixes are refused:
operators copy codes from the official lists, where every code has 6, 9 or 12
digits, and a short code is far more often a typo than a shorthand.

A grid (网格) is an area below a village, with a 15-digit code: the village's 12
digits and a 3-digit suffix, ``001`` to ``999`` (``450702100201001``). It is no
administrative code, so the registry keeps grids apart (``normalize_grid``),
and the area CSV may list them beside areas.

This module also holds the CSV plumbing shared with the roster import: the
error types, the reading of any source as UTF-8 text, header and row checks.
"""
from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Union

CODE_LENGTHS = (6, 9, 12)
AREA_COLUMNS = ("code", "name")
AREA_NAME_MAX_LENGTH = 100
#: Errors kept in a ``CsvErrors``; the rest are only counted, so a file that is
#: wrong on every one of a million rows still yields a readable answer.
MAX_REPORTED_ERRORS = 200

#: What the CSV readers accept: a path, the raw bytes (an HTTP body), or an
#: open file in text or binary mode.
CsvSource = Union[str, os.PathLike, bytes, IO[str], IO[bytes]]


class AreaError(ValueError):
    """A malformed area code; the message names the code."""

    def __init__(self, code: object, reason: str):
        super().__init__(f"area code {str(code)!r} {reason}")
        self.code = code
        self.reason = reason


def normalize(code: object) -> str:
    """Return the code as a clean digit string, or raise ``AreaError``."""
    if isinstance(code, bool) or not isinstance(code, (str, int)):
        raise AreaError(code, "is not a string of digits")
    text = str(code).strip()
    if not text:
        raise AreaError(code, "is empty")
    if not (text.isascii() and text.isdigit()):
        raise AreaError(code, "must contain digits only")
    if len(text) not in CODE_LENGTHS:
        raise AreaError(code, "must have 6 digits (province, prefecture, county), 9 (town) or 12 (village)")
    if text[:2] == "00":
        raise AreaError(code, "has no province: it starts with 00")
    if len(text) > 6 and text[-3:] == "000":
        raise AreaError(code, "ends in 000, which names no town or village")
    return text


GRID_SUFFIX_LENGTH = 3
GRID_CODE_LENGTH = 12 + GRID_SUFFIX_LENGTH


def normalize_grid(code: object) -> str:
    """Return a grid code as a clean digit string (its village's code and a 3-digit suffix),
    or raise ``AreaError``."""
    text = str(code).strip() if isinstance(code, (str, int)) and not isinstance(code, bool) else ""
    if not (text.isascii() and text.isdigit()) or len(text) != GRID_CODE_LENGTH:
        raise AreaError(code, f"is not a grid code: a village's 12 digits and a "
                              f"{GRID_SUFFIX_LENGTH}-digit suffix")
    if text[12:] == "000":
        raise AreaError(code, "ends in 000, which names no grid")
    normalize(text[:12])
    return text


def village_of_grid(code: str) -> str:
    """The 12-digit code of the village a (normalised) grid code lies in."""
    return code[:12]


def is_grid_code(text: str) -> bool:
    """Whether a cell is written as a grid code (15 characters), not an area code."""
    return len(text.strip()) == GRID_CODE_LENGTH


def level(code: object) -> str:
    """``province``, ``prefecture``, ``county``, ``town`` or ``village``."""
    text = normalize(code)
    if len(text) == 12:
        return "village"
    if len(text) == 9:
        return "town"
    if text.endswith("0000"):
        return "province"
    if text.endswith("00"):
        return "prefecture"
    return "county"


def parent(code: object) -> str | None:
    """The code of the area directly above, or ``None`` for a province."""
    text = normalize(code)
    area_level = level(text)
    if area_level == "village":
        return text[:9]
    if area_level == "town":
        return text[:6]
    if area_level == "county":
        return text[:4] + "00"
    if area_level == "prefecture":
        return text[:2] + "0000"
    return None


def prefix(code: object) -> str:
    """The prefix shared by this code and every code beneath it."""
    text = normalize(code)
    area_level = level(text)
    if area_level == "province":
        return text[:2]
    if area_level == "prefecture":
        return text[:4]
    return text


@dataclass(frozen=True)
class RowError:
    """One problem in a CSV file.

    ``line`` is the row number a spreadsheet shows (the header is line 1);
    ``column`` is the column's header name, or ``None`` when the whole row or
    file is at fault.
    """

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class CsvErrors(ValueError):
    """Every problem found in a CSV file; the file was not imported at all.

    ``errors`` holds the first ``MAX_REPORTED_ERRORS`` problems in file order,
    ``omitted`` how many more there were.
    """

    def __init__(self, errors: list[RowError], omitted: int = 0):
        self.errors = list(errors)
        self.omitted = omitted
        super().__init__(self._summary())

    def _summary(self) -> str:
        total = len(self.errors) + self.omitted
        lines = [f"{total} error{'s' if total != 1 else ''} in the CSV file; nothing was imported"]
        lines += [f"  {error}" for error in self.errors]
        if self.omitted:
            lines.append(f"  … and {self.omitted} more")
        return "\n".join(lines)


class ErrorCollector:
    """Collects row errors up to the reporting cap, counting the rest."""

    def __init__(self) -> None:
        self.errors: list[RowError] = []
        self.omitted = 0

    def add(self, line: int, column: str | None, message: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(line, column, message))
        else:
            self.omitted += 1

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        if self.errors:
            raise CsvErrors(self.errors, self.omitted)


@contextmanager
def open_csv_text(source: CsvSource) -> Iterator[IO[str]]:
    """Open any ``CsvSource`` as text; a file the caller opened stays open.

    Bytes are decoded as UTF-8 with ``surrogateescape``, so a byte that is not
    UTF-8 reaches ``csv_records`` as a lone surrogate and is reported with its
    line and column instead of aborting the read somewhere in a buffer.
    """
    if isinstance(source, io.TextIOBase):
        yield source
    elif isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8-sig", errors="surrogateescape", newline="") as text:
            yield text
    else:
        binary = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            yield text
        finally:
            text.detach()  # leave the caller's binary file open


def read_header(text: IO[str], expected: tuple[str, ...]) -> list[str]:
    """Read the header row and check it names exactly the ``expected`` columns.

    Column order is free; names are matched after trimming spaces and case.
    Raises ``CsvErrors`` naming every unknown, missing or repeated column.
    """
    # A text file the caller opened as plain "utf-8" still carries the BOM.
    problems = ErrorCollector()
    header = next((fields for _line, fields in numbered_records(
        csv.reader([text.readline().lstrip("\ufeff")]), problems)), [])
    problems.raise_if_any()
    names = [name.strip().lower() for name in header]
    if not any(names):
        raise CsvErrors([RowError(1, None, f"the file is empty; the header must be {','.join(expected)}")])
    if _UNDECODABLE.search("".join(names)):
        raise CsvErrors([RowError(1, None, NOT_UTF8)])
    errors = [RowError(1, name, "unknown column") for name in names if name not in expected]
    errors += [RowError(1, name, "column appears more than once")
               for name in expected if names.count(name) > 1]
    errors += [RowError(1, name, "missing column") for name in expected if name not in names]
    if errors:
        raise CsvErrors(errors)
    return names


def csv_records(text: IO[str], columns: list[str], errors: ErrorCollector) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, {column: cell})`` for every non-blank record after the header.

    Lines are counted as records, the way a spreadsheet numbers its rows (the
    header is line 1). A record with the wrong number of fields is an error.
    Text that is not UTF-8 is an error too, and reading stops there: the whole
    file has the wrong encoding, and repeating that on every row helps no one.
    """
    for line, fields in numbered_records(csv.reader(text), errors, first=2):
        if not any(field.strip() for field in fields):
            continue
        if _UNDECODABLE.search("".join(fields)):
            index = next(index for index, field in enumerate(fields) if _UNDECODABLE.search(field))
            errors.add(line, columns[index] if index < len(columns) else None, NOT_UTF8)
            return
        if len(fields) != len(columns):
            errors.add(line, None, f"has {len(fields)} fields; the header has {len(columns)}")
            continue
        yield line, dict(zip(columns, fields))


def numbered_records(reader, errors: ErrorCollector, first: int = 1) -> Iterator[tuple[int, list[str]]]:
    """A ``csv.reader``'s records numbered as spreadsheet rows from ``first``; a record the
    reader refuses (a cell over the csv module's field limit, a broken quote) ends the file
    with an error on its line."""
    line = first - 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            limit = csv.field_size_limit()
            message = (f"a cell is longer than {limit} characters, the most a cell may hold"
                       if "field limit" in str(error) else f"the CSV cannot be read here: {error}")
            errors.add(line + 1, None, message)
            return
        line += 1
        yield line, fields


NOT_UTF8 = "the text is not UTF-8; save the file as 'CSV UTF-8' (plain 'CSV' in Chinese Excel is GBK)"
# Where ``surrogateescape`` put the bytes that were not UTF-8.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def read_area_csv(source: CsvSource) -> list[tuple[str, str]]:
    """Read a ``code,name`` area file into ``[(code, name), ...]``.

    A code is an area's or a grid's (``normalize_grid``). Every code is normalised; a malformed code, an empty or overlong name, or
    a code listed twice is an error. All errors are raised together as
    ``CsvErrors`` and nothing is returned, so an import with errors changes
    nothing. Whether each code's parent is registered is the registry's check.
    """
    errors = ErrorCollector()
    areas: list[tuple[str, str]] = []
    first_line_of: dict[str, int] = {}
    with open_csv_text(source) as text:
        columns = read_header(text, AREA_COLUMNS)
        for line, row in csv_records(text, columns, errors):
            code = _area_code_cell(line, row["code"], errors)
            name = _area_name_cell(line, row["name"], errors)
            if code is None or name is None:
                continue
            if code in first_line_of:
                errors.add(line, "code", f"{code} is already on line {first_line_of[code]}")
                continue
            first_line_of[code] = line
            areas.append((code, name))
    errors.raise_if_any()
    return areas


def _area_code_cell(line: int, cell: str, errors: ErrorCollector) -> str | None:
    try:
        return normalize_grid(cell) if is_grid_code(cell) else normalize(cell)
    except AreaError as error:
        errors.add(line, "code", str(error))
        return None


def _area_name_cell(line: int, cell: str, errors: ErrorCollector) -> str | None:
    name = cell.strip()
    if not name:
        errors.add(line, "name", "is empty")
        return None
    if len(name) > AREA_NAME_MAX_LENGTH:
        errors.add(line, "name", f"is longer than {AREA_NAME_MAX_LENGTH} characters")
        return None
    return name
