"""The roster's quick check of plain CN mobiles gives what ``phonenumbers`` gives, number for number."""
from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings, strategies as st

from audiences.roster_cells import phone_number


def library_answer(cell: str) -> str | None:
    """What the roster took before the quick check: parse, validate, format."""
    try:
        number = phonenumbers.parse(cell, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def roster_answer(cell: str) -> str | None:
    try:
        return phone_number(cell)
    except ValueError:
        return None


@settings(max_examples=3000, deadline=None)
@given(digits=st.text("0123456789", min_size=10, max_size=10), e164=st.booleans())
def test_every_eleven_digit_number_from_1_is_read_as_the_library_reads_it(digits, e164):
    cell = ("+86" if e164 else "") + "1" + digits
    assert roster_answer(cell) == library_answer(cell)


@pytest.mark.parametrize("cell", ["13800138000", "+8613800138000", "17951138001380", "11812345678",
                                  "12593138001380", "17900000000", "19912345678", "+8619212345678"])
def test_carrier_prefixes_and_unassigned_ranges_take_the_library_s_way(cell):
    assert roster_answer(cell) == library_answer(cell)
