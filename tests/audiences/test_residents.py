import datetime
import io
import itertools
import random

import pytest

from audiences.residents import (
    ROSTER_COLUMNS,
    CsvErrors,
    ResidentProfile,
    check_roster_csv,
    iter_roster,
    read_roster_csv,
    write_roster_csv,
)

VILLAGE = "450702100201"
KNOWN = {VILLAGE, "450702100202", "450702"}
HEADER = ",".join(ROSTER_COLUMNS)
THIS_YEAR = datetime.date.today().year


def known_area(code):
    return code in KNOWN


def roster(*rows, header=HEADER):
    return ("\n".join([header, *rows]) + "\n").encode()


_PHONES = (f"138001{n:05d}" for n in itertools.count())


def row(**cells):
    """A good row, with ``cells`` replacing the defaults; each row has a phone of its own."""
    values = {
        "name": "黄秀英", "phone": next(_PHONES), "wechat_openid": "", "area_code": VILLAGE,
        "birth_year": "1950", "visually_impaired": "0", "hearing_impaired": "0",
        "has_smartphone": "0", "language": "zh", "opt_out": "", "test_audience": "0",
        "spoken_language": "", "grid": "",
    } | cells
    return ",".join(values[column] for column in ROSTER_COLUMNS)


def test_a_good_row_becomes_a_profile_with_a_normalised_phone():
    [profile] = read_roster_csv(roster(row(phone="13800138000")), known_area=known_area)
    assert profile == ResidentProfile(
        name="黄秀英", phone="+8613800138000", area_code=VILLAGE, birth_year=1950,
    )
    assert profile.age(2025) == 75


@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_a_roster_reads_the_same_with_or_without_bom_from_bytes_path_or_file(bom, tmp_path):
    text = bom + roster(row(), row(name="李明")).decode()
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    expected = read_roster_csv(text.encode("utf-8"), known_area=known_area)
    assert [profile.name for profile in expected] == ["黄秀英", "李明"]
    assert read_roster_csv(path, known_area=known_area) == expected
    assert read_roster_csv(io.BytesIO(text.encode()), known_area=known_area) == expected
    assert read_roster_csv(io.StringIO(text), known_area=known_area) == expected


def test_columns_may_come_in_any_order_and_letter_case():
    columns = list(ROSTER_COLUMNS)
    random.Random(7).shuffle(columns)
    cells = dict(zip(ROSTER_COLUMNS, row(phone="13800138000", hearing_impaired="1", opt_out="voice").split(",")))
    text = roster(",".join(cells[column] for column in columns),
                  header=",".join(f" {column.upper()} " for column in columns))
    [profile] = read_roster_csv(text, known_area=known_area)
    assert profile.hearing_impaired and profile.opt_out == {"voice"}
    assert profile.phone == "+8613800138000"


@pytest.mark.parametrize(("spelling", "value"), [
    ("1", True), ("0", False), ("true", True), ("FALSE", False), ("True", True),
    ("yes", True), ("No", False), ("YES", True), ("是", True), ("否", False),
])
def test_booleans_in_every_accepted_spelling(spelling, value):
    flags = ("visually_impaired", "hearing_impaired", "has_smartphone", "test_audience")
    [profile] = read_roster_csv(roster(row(**{flag: spelling for flag in flags})), known_area=known_area)
    assert [getattr(profile, flag) for flag in flags] == [value] * 4


@pytest.mark.parametrize(("written", "e164"), [
    ("13800138000", "+8613800138000"),
    ("138 0013 8000", "+8613800138000"),
    ("138-0013-8000", "+8613800138000"),
    ("+86 138 0013 8000", "+8613800138000"),
    ("008613800138000", "+8613800138000"),
    ("0777-2821234", "+867772821234"),  # a Qinzhou landline reaches a voice call
    ("+44 20 7946 0958", "+442079460958"),
])
def test_phone_numbers_are_normalised_to_e164(written, e164):
    [profile] = read_roster_csv(roster(row(phone=f'"{written}"')), known_area=known_area)
    assert profile.phone == e164


def test_empty_optional_cells_take_the_documented_defaults():
    empty = {column: "" for column in ROSTER_COLUMNS if column not in ("name", "area_code", "phone")}
    [profile] = read_roster_csv(roster(row(phone="13800138000", **empty)), known_area=known_area)
    assert profile == ResidentProfile(name="黄秀英", phone="+8613800138000", area_code=VILLAGE)
    assert (profile.birth_year, profile.language, profile.opt_out) == (None, "zh", frozenset())
    assert profile.age(2030) is None


def test_an_unknown_smartphone_is_assumed_only_for_someone_with_wechat():
    with_openid, without = read_roster_csv(
        roster(row(phone="", wechat_openid="oAbc_123-xyz", has_smartphone=""), row(has_smartphone="")),
        known_area=known_area)
    assert with_openid.has_smartphone and with_openid.phone is None
    assert not without.has_smartphone


def test_language_and_opt_out_are_read_in_any_case_and_with_either_semicolon():
    [profile] = read_roster_csv(roster(row(language="EN", opt_out=" SMS ；wechat; ")), known_area=known_area)
    assert profile.language == "en"
    assert profile.opt_out == {"sms", "wechat"}


@pytest.mark.parametrize(("cells", "column", "message"), [
    ({"name": ""}, "name", "is empty"),
    ({"name": "名" * 101}, "name", "longer than 100"),
    ({"phone": "12345"}, "phone", "'12345' is not a valid phone number"),
    ({"phone": "phone"}, "phone", "'phone' is not a phone number"),
    ({"phone": "1.38001E+10"}, "phone", "format the column as text"),
    ({"phone": "", "wechat_openid": ""}, "phone", "needs a phone or a wechat_openid"),
    ({"wechat_openid": "o abc"}, "wechat_openid", "not a WeChat openid"),
    ({"area_code": ""}, "area_code", "is empty"),
    ({"area_code": "4507021002"}, "area_code", "'4507021002'"),
    ({"area_code": "450703100201"}, "area_code", "area 450703100201 is not in the area registry"),
    ({"birth_year": "1899"}, "birth_year", "1899 is not between 1900"),
    ({"birth_year": str(THIS_YEAR + 1)}, "birth_year", f"{THIS_YEAR + 1} is not between"),
    ({"birth_year": "1950.0"}, "birth_year", "'1950.0' is not a year"),
    ({"visually_impaired": "maybe"}, "visually_impaired", "'maybe' is not a yes/no value"),
    ({"hearing_impaired": "y"}, "hearing_impaired", "'y' is not a yes/no value"),
    ({"has_smartphone": "2"}, "has_smartphone", "'2' is not a yes/no value"),
    ({"test_audience": "x"}, "test_audience", "'x' is not a yes/no value"),
    ({"language": "xx-!!"}, "language", "'xx-!!' is not a language tag"),
    ({"language": "xx"}, "language", "'xx' names no known language"),
    ({"spoken_language": "zh_yue!"}, "spoken_language", "is not a language tag"),
    ({"opt_out": "loudspeaker"}, "opt_out", "loudspeaker cannot be opted out of"),
    ({"opt_out": "sms;email"}, "opt_out", "'email' is not a channel"),
])
def test_a_bad_cell_is_reported_with_its_line_and_column(cells, column, message):
    with pytest.raises(CsvErrors) as raised:
        read_roster_csv(roster(row(), row(), row(**cells)), known_area=known_area)
    [error] = raised.value.errors
    assert (error.line, error.column) == (4, column)
    assert message in error.message
    assert f"line 4, column {column}: " in str(raised.value)


def test_every_error_in_every_row_is_collected_and_nothing_is_returned():
    text = roster(
        row(),
        row(phone="1", birth_year="x"),   # line 3: two errors
        "",                               # line 4: blank, skipped
        row(language="zz"),               # line 5
        row() + ",多余",                   # line 6: a cell beyond the header
        row(),
    )
    with pytest.raises(CsvErrors) as raised:
        read_roster_csv(text, known_area=known_area)
    assert [(error.line, error.column) for error in raised.value.errors] == [
        (3, "phone"), (3, "birth_year"), (5, "language"), (6, None),
    ]
    assert f"has a value beyond the last of the {len(ROSTER_COLUMNS)} columns" in raised.value.errors[-1].message


def test_language_tags_as_people_write_them_are_kept_in_one_canonical_form():
    rows = [row(language=tag, spoken_language=spoken) for tag, spoken in (
        ("zh-CN", ""), ("zh-Hans", "yue"), ("cmn", "zh-yue"), ("zh", "hak"), ("zh-CN", "za"),
        ("en-US", ""), ("", ""), ("ZH-cn", "CMN"), ("za", ""), ("fr", ""))]
    profiles = read_roster_csv(roster(*rows), known_area=known_area)
    assert [(p.language, p.spoken_language) for p in profiles] == [
        ("zh", "zh"), ("zh", "yue"), ("zh", "yue"), ("zh", "hak"), ("zh", "za"),
        ("en", "en"), ("zh", "zh"), ("zh", "zh"), ("za", "za"), ("fr", "fr")]


def test_a_roster_of_every_county_language_imports_and_a_bad_tag_is_a_line_error():
    good = [row(language=tag) for tag in ("zh-CN", "yue", "hak", "za", "en")]
    assert [p.language for p in read_roster_csv(roster(*good), known_area=known_area)] == [
        "zh", "yue", "hak", "za", "en"]
    with pytest.raises(CsvErrors) as raised:
        read_roster_csv(roster(*good, row(language="xx-!!")), known_area=known_area)
    [error] = raised.value.errors
    assert (error.line, error.column) == (7, "language")
    assert "line 7, column language: 'xx-!!' is not a language tag" in str(raised.value)


def test_chinese_headers_name_the_written_and_the_spoken_language():
    text = "姓名,手机号,村代码,语言,方言\n黄伯,13800138000,%s,zh-CN,粤语\n" % VILLAGE
    with pytest.raises(CsvErrors) as raised:  # a language is a tag, not its Chinese name
        read_roster_csv(text.encode(), known_area=known_area)
    assert [(e.line, e.column) for e in raised.value.errors] == [(2, "方言")]
    [profile] = read_roster_csv(text.replace("粤语", "yue").encode(), known_area=known_area)
    assert (profile.language, profile.spoken_language) == ("zh", "yue")


def test_a_quoted_cell_spanning_lines_still_counts_as_one_spreadsheet_row():
    text = roster(row(name='"黄\n秀英"'), row(language="xx"))
    with pytest.raises(CsvErrors) as raised:
        read_roster_csv(text, known_area=known_area)
    assert [(error.line, error.column) for error in raised.value.errors] == [(3, "language")]


@pytest.mark.parametrize(("header", "problems"), [
    (HEADER.replace(",area_code", ""), [("area_code", "missing column (also accepted: 地区代码")]),
    ("name,area_code,birth_year", [("phone", "missing column: a roster needs phone or wechat_openid")]),
    (HEADER + ",name", [("name", "names the same column (name) as 'name'")]),
    (HEADER + ",手机号", [("手机号", "names the same column (phone) as 'phone'")]),
])
def test_missing_or_repeated_columns_are_named(header, problems):
    with pytest.raises(CsvErrors) as raised:
        read_roster_csv(roster(row(), header=header), known_area=known_area)
    assert len(raised.value.errors) == len(problems)
    for error, (column, message) in zip(raised.value.errors, problems):
        assert (error.line, error.column) == (1, column)
        assert error.message.startswith(message)


def test_an_empty_file_is_refused_saying_it_needs_a_header():
    with pytest.raises(CsvErrors, match="the file is empty; it needs a header row"):
        read_roster_csv(b"", known_area=known_area)


def test_iter_roster_stops_yielding_at_the_first_bad_row_and_raises_at_the_end():
    text = roster(row(name="一"), row(name="二"), row(phone="1"), row(name="四"), row(language="?"))
    seen = []
    with pytest.raises(CsvErrors) as raised:
        for profile in iter_roster(text, known_area=known_area):
            seen.append(profile.name)
    assert seen == ["一", "二"]
    assert [error.line for error in raised.value.errors] == [4, 6]


def test_check_roster_csv_counts_a_good_file_and_raises_on_a_bad_one():
    assert check_roster_csv(roster(row(), row(), row()), known_area=known_area) == 3
    with pytest.raises(CsvErrors):
        check_roster_csv(roster(row(), row(area_code="450702100999")), known_area=known_area)


def test_known_area_is_asked_with_the_normalised_code():
    asked = []
    read_roster_csv(roster(row(area_code=" 450702 ")), known_area=lambda code: asked.append(code) or True)
    assert asked == ["450702"]


def test_write_then_read_gives_the_same_profiles(tmp_path):
    profiles = [
        ResidentProfile(name="黄秀英", phone="+8613800138000", area_code=VILLAGE, birth_year=1940,
                        visually_impaired=True, opt_out=frozenset({"voice", "wechat"})),
        ResidentProfile(name='Emily "Em" Carter, Jr.', wechat_openid="oAbc-_1", area_code="450702100202",
                        has_smartphone=True, hearing_impaired=True, language="en", test_audience=True),
        ResidentProfile(name="韦\n强", phone="+867772821234", area_code="450702", has_smartphone=False),
    ]
    buffer = io.StringIO()
    assert write_roster_csv(profiles, buffer) == 3
    assert buffer.getvalue().startswith(HEADER + "\n")
    assert read_roster_csv(buffer.getvalue().encode(), known_area=known_area) == profiles

    path = tmp_path / "roster.csv"
    write_roster_csv(iter(profiles), path)
    assert path.read_bytes().startswith("\ufeff".encode())
    assert read_roster_csv(path, known_area=known_area) == profiles
