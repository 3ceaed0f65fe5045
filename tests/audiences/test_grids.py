"""Grid codes (a village's 12 digits and a 3-digit suffix) and the roster's grid column."""
import pytest

from audiences.areas import AreaError, CsvErrors, normalize_grid, read_area_csv, village_of_grid
from audiences.residents import read_roster_csv
from audiences.roster_headers import field_for

VILLAGE = "450702100201"
GRID = VILLAGE + "001"
KNOWN = {VILLAGE, "450702100202", GRID, "450702100202001"}


def read(text: str):
    return read_roster_csv(text.encode(), known_area=KNOWN.__contains__)


def test_a_grid_code_extends_its_villages_code():
    assert normalize_grid(f" {GRID} ") == GRID
    assert village_of_grid(GRID) == VILLAGE


@pytest.mark.parametrize("code, reason", [
    (VILLAGE, "is not a grid code"),
    (VILLAGE + "000", "ends in 000"),
    ("45070210020a001", "is not a grid code"),
    ("450702100000001", "ends in 000, which names no town or village"),
    (True, "is not a grid code"),
])
def test_a_malformed_grid_code_is_refused_saying_why(code, reason):
    with pytest.raises(AreaError, match=reason):
        normalize_grid(code)


def test_the_area_csv_lists_grids_beside_areas():
    rows = read_area_csv(f"code,name\n{VILLAGE},沙埠村\n{GRID},一组\n".encode())
    assert rows == [(VILLAGE, "沙埠村"), (GRID, "一组")]
    with pytest.raises(CsvErrors, match="ends in 000"):
        read_area_csv(f"code,name\n{VILLAGE}000,零组\n".encode())


def test_the_roster_reads_a_grid_by_its_english_or_chinese_header():
    assert field_for("网格") == field_for("Grid") == "grid"
    [english] = read(f"name,phone,area_code,grid\n黄伯,13800138000,{VILLAGE},{GRID}\n")
    [chinese] = read(f"姓名,手机号,村代码,网格\n黄伯,13800138000,{VILLAGE},{GRID}\n")
    assert english.grid == chinese.grid == GRID
    [none] = read(f"name,phone,area_code,grid\n黄伯,13800138000,{VILLAGE},\n")
    assert none.grid is None


@pytest.mark.parametrize("grid, message", [
    ("450702100201002", f"grid 450702100201002 is not in the grid registry"),
    ("450702100202001", f"grid 450702100202001 is in village 450702100202, not in {VILLAGE}"),
    ("12345", "is not a grid code"),
])
def test_a_bad_grid_is_an_error_on_its_line_and_column(grid, message):
    with pytest.raises(CsvErrors) as raised:
        read(f"name,phone,area_code,网格\n黄伯,13800138000,{VILLAGE},{grid}\n")
    [error] = raised.value.errors
    assert (error.line, error.column) == (2, "网格")
    assert message in error.message
