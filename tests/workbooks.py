"""Workbooks made in memory, for the tests of roster files, the roster API and the console."""
from __future__ import annotations

import io

import openpyxl


def xlsx(rows, *, title: str | None = None) -> bytes:
    """An .xlsx file whose first sheet (named ``title`` when given) holds ``rows``."""
    book = openpyxl.Workbook()
    sheet = book.active
    if title:
        sheet.title = title
    for values in rows:
        sheet.append(values)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
