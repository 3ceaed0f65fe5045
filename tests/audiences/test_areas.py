import csv
import io

import pytest

from audiences import areas
from audiences.areas import AreaError, CsvErrors, RowError


@pytest.mark.parametrize(("code", "level", "parent", "prefix"), [
    ("450000", "province", None, "45"),
    ("450700", "prefecture", "450000", "4507"),
    ("450702", "county", "450700", "450702"),
    ("450702100", "town", "450702", "450702100"),
    ("450702100201", "village", "450702100", "450702100201"),
    # A prefecture-level city with towns straight beneath it (东莞 has no counties).
    ("441900003", "town", "441900", "441900003"),
])
def test_level_parent_and_prefix_follow_from_the_code(code, level, parent, prefix):
    assert areas.level(code) == level
    assert areas.parent(code) == parent
    assert areas.prefix(code) == prefix


def test_every_code_beneath_an_area_starts_with_its_prefix():
    village = "450702100201"
    ancestors = []
    code = village
    while code is not None:
        ancestors.append(code)
        code = areas.parent(code)
    assert ancestors == ["450702100201", "450702100", "450702", "450700", "450000"]
    assert all(village.startswith(areas.prefix(ancestor)) for ancestor in ancestors)
    assert not "450703100201".startswith(areas.prefix("450702"))


def test_normalize_strips_spaces_and_accepts_integers():
    assert areas.normalize("  450702\t") == "450702"
    assert areas.normalize(450702100201) == "450702100201"


@pytest.mark.parametrize("code", [
    "", "   ", "45", "4507", "4507021", "45070210020", "4507021002011",
    "45O702", "450702-100", "４５０７０２", "000000", "450702000", "450702100000",
    None, True, 4507.02,
])
def test_a_malformed_code_is_refused_with_an_error_naming_it(code):
    with pytest.raises(AreaError) as raised:
        areas.normalize(code)
    assert repr(str(code)) in str(raised.value)
    assert raised.value.code == code
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("function", [areas.level, areas.parent, areas.prefix])
def test_level_parent_and_prefix_refuse_malformed_codes(function):
    with pytest.raises(AreaError, match="'4507'"):
        function("4507")


def test_area_csv_reads_codes_and_names_with_or_without_bom(tmp_path):
    text = "code,name\n450700,钦州市\n 450702 , 钦南区 \n\n450702100,沙埠镇\n"
    expected = [("450700", "钦州市"), ("450702", "钦南区"), ("450702100", "沙埠镇")]
    path = tmp_path / "areas.csv"
    path.write_text("\ufeff" + text, encoding="utf-8")
    assert areas.read_area_csv(path) == expected
    assert areas.read_area_csv(str(path)) == expected
    assert areas.read_area_csv(text.encode()) == expected
    assert areas.read_area_csv(("\ufeff" + text).encode()) == expected
    assert areas.read_area_csv(io.BytesIO(("\ufeff" + text).encode())) == expected
    assert areas.read_area_csv(io.StringIO("\ufeff" + text)) == expected


def test_area_csv_columns_may_come_in_any_order_and_case():
    assert areas.read_area_csv(b"Name,CODE\n\xe9\x92\xa6\xe5\x8d\x97\xe5\x8c\xba,450702\n") == [("450702", "钦南区")]


def test_area_csv_reports_every_bad_row_and_returns_nothing():
    text = ("code,name\n"
            "450702,钦南区\n"
            "4507,钦州\n"           # line 3: malformed code
            "450703,\n"             # line 4: empty name
            "450702,又一个钦南区\n"  # line 5: duplicate
            "450721,灵山县,extra\n"  # line 6: field count
            f"450722,{'浦' * 101}\n")  # line 7: name too long
    with pytest.raises(CsvErrors) as raised:
        areas.read_area_csv(text.encode())
    errors = raised.value.errors
    assert [(error.line, error.column) for error in errors] == [
        (3, "code"), (4, "name"), (5, "code"), (6, None), (7, "name"),
    ]
    assert "'4507'" in errors[0].message
    assert "already on line 2" in errors[2].message
    assert "5 errors" in str(raised.value)
    assert "line 3, column code:" in str(raised.value)


@pytest.mark.parametrize(("header", "problems"), [
    ("code", [(1, "name", "missing column")]),
    ("code,name,parent", [(1, "parent", "unknown column")]),
    ("code,name,code", [(1, "code", "column appears more than once")]),
    ("", [(1, None, "the file is empty; the header must be code,name")]),
])
def test_area_csv_header_must_name_exactly_code_and_name(header, problems):
    with pytest.raises(CsvErrors) as raised:
        areas.read_area_csv(f"{header}\n450702,钦南区\n".encode())
    assert [(error.line, error.column, error.message) for error in raised.value.errors] == problems


@pytest.mark.parametrize(("text", "line"), [
    ('code,"{huge}"\n450702,钦南区\n', 1),  # in the header row
    ('code,name\n450702,钦南区\n450703,"{huge}"\n', 3),
])
def test_a_cell_over_the_csv_field_limit_is_an_error_on_its_line(text, line):
    huge = "x" * (csv.field_size_limit() + 1)
    with pytest.raises(CsvErrors) as raised:
        areas.read_area_csv(text.format(huge=huge).encode())
    [error] = raised.value.errors
    assert error.line == line and f"longer than {csv.field_size_limit()} characters" in error.message


def test_a_file_that_is_not_utf8_is_reported_once_with_line_and_column():
    gbk = "code,name\n450702,钦南区\n450703,钦北区\n".encode("gbk")
    with pytest.raises(CsvErrors) as raised:
        areas.read_area_csv(gbk)
    [error] = raised.value.errors
    assert (error.line, error.column) == (2, "name")
    assert "UTF-8" in error.message


def test_errors_beyond_the_cap_are_counted_not_listed():
    rows = "".join(f"bad{index},x\n" for index in range(areas.MAX_REPORTED_ERRORS + 5))
    with pytest.raises(CsvErrors) as raised:
        areas.read_area_csv(("code,name\n" + rows).encode())
    assert len(raised.value.errors) == areas.MAX_REPORTED_ERRORS
    assert raised.value.omitted == 5
    assert "and 5 more" in str(raised.value)
    assert raised.value.errors[-1] == RowError(areas.MAX_REPORTED_ERRORS + 1, "code",
                                               raised.value.errors[-1].message)


def test_a_binary_file_passed_in_is_left_open():
    binary = io.BytesIO(b"code,name\n450702,x\n")
    areas.read_area_csv(binary)
    assert not binary.closed
