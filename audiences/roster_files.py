"""A roster file as a header and rows of text cells, whatever the office saved it as.

* CSV in UTF-8 (with or without BOM), GBK/GB18030 (what plain "CSV" is in
  Chinese Excel and WPS) or UTF-16 (Excel's "Unicode text", tab-separated);
  the encoding is detected with ``charset-normalizer`` and named in the result.
  Any other encoding is refused with a message saying what to save as.
* Excel workbooks (``.xlsx``, recognised by their content, not their name),
  read with ``openpyxl`` in read-only mode from the first sheet or a named one.
  Numbers become their digits (a phone stored as the number ``13800138001``
  reads ``13800138001``), booleans ``1``/``0`` and dates ``YYYY-MM-DD``.

Rows are numbered as the spreadsheet shows them (the header is line 1).
Problems with the file as a whole are raised as ``CsvErrors``; a record the
CSV reader cannot read (a cell over the csv module's size limit, say) ends
the rows with an error for that line in the caller's ``ErrorCollector``.
"""
from __future__ import annotations

import codecs
import csv
import datetime
import io
import itertools
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from charset_normalizer import from_bytes

from audiences.areas import CsvErrors, CsvSource, ErrorCollector, RowError, numbered_records

XLSX = "xlsx"
#: What ``charset-normalizer`` may answer for each encoding we read, and the codec that reads it.
_CODECS = {"utf_8": "utf-8", "ascii": "utf-8", "gb2312": "gb18030", "gbk": "gb18030",
           "gb18030": "gb18030", "hz": None, "utf_16": "utf-16", "utf_16_le": "utf-16-le",
           "utf_16_be": "utf-16-be"}
#: How much more "chaos" (charset-normalizer's measure of garbled text) than the best reading
#: one of ours may show and still be taken.
_AS_LIKELY = 0.01
_LABELS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 (BOM)", "gb18030": "GB18030", "utf-16": "UTF-16",
           "utf-16-le": "UTF-16", "utf-16-be": "UTF-16"}
NOT_READABLE = ("the file is neither a workbook (.xlsx) nor a CSV in UTF-8, GBK/GB18030 or UTF-16"
                "{guess}; save it as 'CSV UTF-8', plain 'CSV' from Chinese Excel, 'Unicode text' "
                "or an Excel workbook")


@dataclass
class Sheet:
    """A roster file opened: how it was read, its header, and its rows (read once)."""

    encoding: str
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]


def open_sheet(source: CsvSource, errors: ErrorCollector, *, sheet: str | None = None) -> Sheet:
    """Open a roster file of any supported kind; raises ``CsvErrors`` when it cannot be read at all."""
    if isinstance(source, io.TextIOBase):
        return _csv_sheet(source.read().lstrip("\ufeff"), "text", errors)
    if isinstance(source, (str, os.PathLike)):
        label = _utf8_label(source)
        if label is not None:  # read as it is parsed: a county's roster is not held whole
            return _csv_lines(_text_lines(source), label, errors)
    data = _read_bytes(source)
    if data.startswith(b"PK\x03\x04"):
        return _xlsx_sheet(data, sheet)
    text, encoding = _decode(data)
    return _csv_sheet(text, encoding, errors)


def _read_bytes(source: CsvSource) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as binary:
            return binary.read()
    return source.read()


def _decode(data: bytes) -> tuple[str, str]:
    """The text and the name of its encoding, or ``CsvErrors`` for an encoding we do not read."""
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[len(codecs.BOM_UTF8):], "utf-8", _LABELS["utf-8-sig"])
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _strict(data, "utf-16")
    try:
        return data.decode("utf-8"), _LABELS["utf-8"]
    except UnicodeDecodeError:
        pass
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise CsvErrors([RowError(1, None, NOT_READABLE.format(guess=""))])
    # A short GBK file is as plausible in Korean cp949: take ours among the likeliest readings.
    plausible = (match.encoding for match in matches if match.chaos <= best.chaos + _AS_LIKELY)
    codec = next((_CODECS[name] for name in plausible if _CODECS.get(name)), None)
    if codec is None:
        raise CsvErrors([RowError(1, None, NOT_READABLE.format(guess=f" (it looks like {best.encoding})"))])
    return _strict(data, codec)


def _strict(data: bytes, codec: str, label: str | None = None) -> tuple[str, str]:
    try:
        return data.decode(codec).lstrip("\ufeff"), label or _LABELS[codec]
    except UnicodeDecodeError:
        raise CsvErrors([RowError(1, None, NOT_READABLE.format(guess=f" (not even {_LABELS[codec]})"))]) \
            from None


def _utf8_label(path: str | os.PathLike) -> str | None:
    """How ``_decode`` names a file that is UTF-8 (with or without BOM), checked a block at a
    time; ``None`` for any other file (a workbook, UTF-16, GBK), which is read whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as binary:
        start = binary.read(len(codecs.BOM_UTF8))
        if start.startswith((b"PK", codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return None
        label = _LABELS["utf-8-sig"] if start == codecs.BOM_UTF8 else _LABELS["utf-8"]
        block = b"" if start == codecs.BOM_UTF8 else start
        try:
            while block:
                decoder.decode(block)
                block = binary.read(1 << 20)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return None
    return label


def _text_lines(path: str | os.PathLike) -> Iterator[str]:
    with open(path, encoding="utf-8-sig", newline="") as text:
        yield from text


def _csv_sheet(text: str, encoding: str, errors: ErrorCollector) -> Sheet:
    return _csv_lines(io.StringIO(text, newline=""), encoding, errors)


def _csv_lines(lines: Iterator[str], encoding: str, errors: ErrorCollector) -> Sheet:
    lines = iter(lines)
    first_line = next(lines, "")
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    records = numbered_records(csv.reader(itertools.chain([first_line] if first_line else [], lines),
                                          delimiter=delimiter), errors)
    header = next((fields for line, fields in records), None)
    if header is None:
        raise CsvErrors(errors.errors or [RowError(1, None, "the file is empty; it needs a header row")])
    return Sheet(encoding, header, records)


def _xlsx_sheet(data: bytes, name: str | None) -> Sheet:
    import openpyxl  # only for workbooks: it is slow to import
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise CsvErrors([RowError(1, None, f"the workbook cannot be read ({error})")]) from None
    if name is not None and name not in workbook.sheetnames:
        raise CsvErrors([RowError(1, None, f"the workbook has no sheet {name!r} "
                                           f"(it has {', '.join(workbook.sheetnames)})")])
    worksheet = workbook[name] if name is not None else workbook.worksheets[0]
    worksheet.reset_dimensions()  # some writers record a wrong size
    rows = ((line, [_cell_text(value) for value in values])
            for line, values in enumerate(worksheet.iter_rows(values_only=True), start=1))
    header = next(rows, None)
    if header is None:
        raise CsvErrors([RowError(1, None, "the sheet is empty; it needs a header row")])
    return Sheet(XLSX, header[1], rows)


def _cell_text(value: object) -> str:
    """A workbook cell as the text a CSV would hold."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)
