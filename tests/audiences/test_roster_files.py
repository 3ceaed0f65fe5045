"""Rosters as offices keep them: the minimal file, Chinese headers, GBK, UTF-16 and workbooks (#24)."""
import csv
import datetime
import io

import openpyxl
import pytest

from audiences.residents import CsvErrors, Roster, read_roster_csv
from audiences.roster_headers import CHINESE_HEADERS, HEADER_NAMES, field_for
from tests.workbooks import xlsx

VILLAGE = "450702100201"


def known_area(code):
    return code in {VILLAGE, "450702"}


def test_the_documented_minimal_file_imports_with_the_defaults():
    text = f"name,area_code,phone\n黄秀英,{VILLAGE},13800138000\n李明,{VILLAGE},13800138001\n".encode()
    roster = Roster(text, known_area=known_area)
    assert roster.notes == []
    [(line, first), (_, second)] = list(roster.residents())
    assert (line, first.name, first.phone, first.birth_year, first.language) == \
        (2, "黄秀英", "+8613800138000", None, "zh")
    assert not first.has_smartphone and not first.visually_impaired and first.opt_out == frozenset()
    assert second.phone == "+8613800138001"


def test_a_file_with_an_openid_and_no_phone_column_imports():
    [profile] = read_roster_csv(f"name,wechat_openid,area_code\n王,o_abc,{VILLAGE}\n".encode(),
                                known_area=known_area)
    assert profile.wechat_openid == "o_abc" and profile.phone is None and profile.has_smartphone


def test_unknown_columns_are_ignored_with_a_note():
    roster = Roster(f"name,area_code,phone,备注,email\n王,{VILLAGE},13800138000,x,a@b\n".encode(),
                    known_area=known_area)
    assert roster.notes == ["column '备注' is not a roster column and was ignored",
                            "column 'email' is not a roster column and was ignored"]
    assert [profile.name for _, profile in roster.residents()] == ["王"]


@pytest.mark.parametrize("label", ["手机号", " 手机 号 ", "Phone", "PHONE", "电话", "联系电话"])
def test_phone_is_recognised_by_its_chinese_names_in_any_case_and_spacing(label):
    assert field_for(label) == "phone"


def test_every_field_has_its_own_name_and_a_chinese_one_and_no_name_is_shared():
    assert all(names[0] == field and not names[1].isascii() for field, names in HEADER_NAMES.items())
    every = [field_for(name) for names in HEADER_NAMES.values() for name in names]
    assert every == [field for field, names in HEADER_NAMES.items() for _ in names]
    assert field_for("微信 OpenID") == "wechat_openid" and field_for("村/社区代码") == "area_code"


def chinese_csv(*rows) -> str:
    header = ["姓名", "手机号", "村代码", "出生年份", "视障", "听力障碍", "有智能手机", "语言", "退订", "测试对象"]
    return "\n".join([",".join(header), *rows]) + "\n"


def test_a_gbk_file_with_chinese_headers_is_read_and_its_encoding_named():
    text = chinese_csv(f"黄秀英,13800138000,{VILLAGE},1950,是,否,否,zh,wechat,否",
                       f"韦强,13800138001,{VILLAGE},1988,0,1,1,,,0")
    roster = Roster(text.encode("gbk"), known_area=known_area)
    assert roster.encoding == "GB18030"
    first, second = (profile for _, profile in roster.residents())
    assert (first.name, first.birth_year, first.visually_impaired, first.opt_out) == \
        ("黄秀英", 1950, True, {"wechat"})
    assert (second.name, second.hearing_impaired, second.has_smartphone) == ("韦强", True, True)


def test_errors_name_the_column_by_the_files_own_header():
    text = chinese_csv(f"黄秀英,12345,{VILLAGE},1950,是,否,否,zh,,否", f"韦强,13800138001,{VILLAGE},18,,,,,,")
    with pytest.raises(CsvErrors) as raised:
        read_roster_csv(text.encode("gbk"), known_area=known_area)
    assert [(e.line, e.column) for e in raised.value.errors] == [(2, "手机号"), (3, "出生年份")]


@pytest.mark.parametrize(("encoding", "label"), [
    ("utf-8", "UTF-8"), ("utf-8-sig", "UTF-8 (BOM)"), ("utf-16", "UTF-16"), ("gb18030", "GB18030"),
])
def test_each_supported_encoding_is_detected(encoding, label):
    text = chinese_csv(f"黄秀英,13800138000,{VILLAGE},1950,是,否,否,zh,,否")
    roster = Roster(text.encode(encoding), known_area=known_area)
    assert roster.encoding == label
    assert [profile.name for _, profile in roster.residents()] == ["黄秀英"]


def test_excel_unicode_text_is_utf16_and_tab_separated():
    text = f"姓名\t手机号\t村代码\n黄秀英\t13800138000\t{VILLAGE}\n韦强\t13800138001\t{VILLAGE}\n"
    roster = Roster(text.encode("utf-16"), known_area=known_area)
    assert roster.encoding == "UTF-16"
    assert [profile.name for _, profile in roster.residents()] == ["黄秀英", "韦强"]


def test_a_file_in_another_encoding_is_refused_saying_what_to_save_as():
    text = (f"name,phone,area_code\nИван Петров,13800138000,{VILLAGE}\n"
            f"Сергей Иванов,13800138001,{VILLAGE}\n").encode("cp1251")
    with pytest.raises(CsvErrors) as raised:
        Roster(text, known_area=known_area)
    [error] = raised.value.errors
    assert error.line == 1 and "neither a workbook (.xlsx) nor a CSV in UTF-8, GBK/GB18030 or UTF-16" in \
        error.message and "save it as" in error.message


def test_a_cell_over_the_csv_modules_limit_is_an_error_on_its_line():
    huge = "x" * (csv.field_size_limit() + 1)
    text = f"name,phone,area_code\n王,13800138000,{VILLAGE}\n\"{huge}\",13800138001,{VILLAGE}\n".encode()
    with pytest.raises(CsvErrors) as raised:
        read_roster_csv(text, known_area=known_area)
    [error] = raised.value.errors
    assert error.line == 3 and f"longer than {csv.field_size_limit()} characters" in error.message


def test_a_header_over_the_csv_modules_limit_is_an_error_too():
    with pytest.raises(CsvErrors) as raised:
        Roster(("\"" + "x" * (csv.field_size_limit() + 1) + "\"\n").encode(), known_area=known_area)
    assert raised.value.errors[0].line == 1


def test_a_phone_or_openid_repeated_in_the_file_is_an_error_on_each_later_line():
    text = (f"name,phone,wechat_openid,area_code\n甲,13800138000,o_1,{VILLAGE}\n乙,138 0013 8000,,{VILLAGE}\n"
            f"丙,13800138002,o_1,{VILLAGE}\n丁,+8613800138000,,{VILLAGE}\n").encode()
    with pytest.raises(CsvErrors) as raised:
        read_roster_csv(text, known_area=known_area)
    assert [(e.line, e.column, e.message) for e in raised.value.errors] == [
        (3, "phone", "+8613800138000 is already on line 2"),
        (4, "wechat_openid", "o_1 is already on line 2"),
        (5, "phone", "+8613800138000 is already on line 2"),
    ]


def test_leading_apostrophes_are_dropped_except_from_names():
    text = f"name,phone,area_code,birth_year\n'Brien,'+8613800138000,'{VILLAGE},'1950\n".encode()
    [profile] = read_roster_csv(text, known_area=known_area)
    assert (profile.name, profile.phone, profile.area_code, profile.birth_year) == \
        ("'Brien", "+8613800138000", VILLAGE, 1950)


def test_a_workbook_with_numbers_as_phones_and_codes_dates_and_booleans():
    data = xlsx([
        ["姓名", "手机号", "村代码", "出生年份", "视力障碍", "有智能手机"],
        ["黄秀英", 13800138000, int(VILLAGE), datetime.datetime(1950, 3, 1), True, False],
        ["韦强", 1.3800138001e10, VILLAGE, 1988, False, None],
        [None, None, None],
        ["李明", "'13800138002", VILLAGE, None, "是", "1"],
    ])
    roster = Roster(data, known_area=known_area)
    assert roster.encoding == "xlsx"
    lines, profiles = zip(*roster.residents())
    assert lines == (2, 3, 5)
    assert [p.phone for p in profiles] == ["+8613800138000", "+8613800138001", "+8613800138002"]
    assert [p.birth_year for p in profiles] == [1950, 1988, None]
    assert [p.visually_impaired for p in profiles] == [True, False, True]
    assert [p.has_smartphone for p in profiles] == [False, False, True]
    assert {p.area_code for p in profiles} == {VILLAGE}


def test_a_workbook_error_names_the_sheet_row_and_header():
    data = xlsx([["name", "电话", "地区代码"], ["王", 12345, VILLAGE], [None], ["李", 13800138000, 450799]])
    with pytest.raises(CsvErrors) as raised:
        read_roster_csv(data, known_area=known_area)
    assert [(e.line, e.column) for e in raised.value.errors] == [(2, "电话"), (4, "地区代码")]


def test_a_named_sheet_is_read_and_a_missing_one_refused():
    book = openpyxl.Workbook()
    book.active.append(["说明"])
    named = book.create_sheet("名单")
    named.append(["姓名", "手机", "村代码"])
    named.append(["王", "13800138000", VILLAGE])
    buffer = io.BytesIO()
    book.save(buffer)
    [(_, profile)] = list(Roster(buffer.getvalue(), known_area=known_area, sheet="名单").residents())
    assert profile.name == "王"
    with pytest.raises(CsvErrors, match="no sheet 'other'"):
        Roster(buffer.getvalue(), known_area=known_area, sheet="other")


def test_a_damaged_workbook_is_refused_not_crashed_on():
    with pytest.raises(CsvErrors, match="the workbook cannot be read"):
        Roster(b"PK\x03\x04" + b"\0" * 100, known_area=known_area)


def test_the_preview_shows_the_first_rows_as_understood_with_their_problems():
    roster = Roster(chinese_csv(f"黄秀英,13800138000,{VILLAGE},1950,是,否,否,zh,,否",
                                f"韦强,1,{VILLAGE},,,,,,,", f"李明,13800138002,{VILLAGE},,,,,,,").encode(),
                    known_area=known_area)
    assert roster.columns[:3] == [("姓名", "name"), ("手机号", "phone"), ("村代码", "area_code")]
    shown = roster.preview(2)
    assert [(line, cells["name"], cells["phone"]) for line, cells, _ in shown] == \
        [(2, "黄秀英", "13800138000"), (3, "韦强", "1")]
    assert shown[0][2] == [] and [e.column for e in shown[1][2]] == ["手机号"]


def test_the_chinese_template_headers_read_back_as_the_fields():
    assert {field_for(label): field for field, label in CHINESE_HEADERS.items()} == \
        {field: field for field in HEADER_NAMES}


def test_a_one_row_gbk_roster_is_read_as_gbk_not_as_korean():
    """charset-normalizer rates cp949 as likely as GB18030 for a few Chinese characters."""
    roster = Roster(f"姓名,手机号,村代码\n周杰,13800138000,{VILLAGE}\n".encode("gbk"), known_area=known_area)
    assert roster.encoding == "GB18030" and [p.name for _, p in roster.residents()] == ["周杰"]
