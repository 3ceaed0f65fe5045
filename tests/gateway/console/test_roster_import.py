"""The console's roster upload (#24): preview as understood, then import; templates; large files as jobs."""
from __future__ import annotations

import csv
import io
import os
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.delivery import imports
from gateway.store.schema import residents
from tests.conftest import run_jobs
from tests.gateway.conftest import VILLAGE_A, VILLAGE_B
from tests.gateway.console.conftest import csrf_token, login, page
from tests.workbooks import xlsx

pytestmark = pytest.mark.integration


def upload(client, data: bytes, filename: str, **form):
    return client.post("/residents/import", content_type="multipart/form-data",
                       data={"csrf_token": csrf_token(client, "/residents/import"),
                             "roster": (io.BytesIO(data), filename), **form})


def confirm(client, response, **form):
    import_id = re.search(r'action="/residents/import/([0-9a-f]{32})"', page(response)).group(1)
    return client.post(f"/residents/import/{import_id}",
                       data={"csrf_token": csrf_token(client, "/residents"), **form})


def phones(app, area=VILLAGE_A):
    with app.extensions["engine"].connect() as conn:
        return {row.phone: row for row in conn.execute(select(residents).where(residents.c.area_code == area))}


@pytest.mark.parametrize(("data", "filename", "encoding"), [
    (f"name,area_code,phone\n周杰,{VILLAGE_A},13900000001\n".encode(), "min.csv", "UTF-8"),
    (f"姓名,手机号,村代码,视障\n周杰,13900000001,{VILLAGE_A},是\n".encode("gbk"), "名单.csv", "GB18030"),
    (f"姓名\t电话\t地区代码\n周杰\t13900000001\t{VILLAGE_A}\n".encode("utf-16"), "unicode.txt", "UTF-16"),
    (xlsx([["姓名", "手机号", "村代码"], ["周杰", 13900000001, int(VILLAGE_A)]]), "名单.xlsx", "xlsx"),
])
def test_each_kind_of_roster_is_previewed_as_understood_then_imported(app, client, data, filename, encoding):
    login(client, "admin")
    preview = upload(client, data, filename)
    html = page(preview)
    assert preview.status_code == 200 and f"read as {encoding}" in html.replace("读取为", "read as") \
        or encoding in html
    columns = re.search(r'<table class="list" id="roster-columns">(.*?)</table>', html, re.S).group(1)
    assert re.search(r"<td>(姓名|name)</td><td>name</td>", columns)
    rows = re.search(r'<table class="list" id="roster-preview">(.*?)</table>', html, re.S).group(1)
    assert "<td>2</td><td>周杰</td>" in rows and "13900000001" in rows
    assert "+8613900000001" not in phones(app)  # nothing yet
    response = confirm(client, preview)
    assert response.status_code == 302
    assert phones(app)["+8613900000001"].name == "周杰"


def test_a_bad_cell_is_listed_at_upload_with_the_files_header(app, client):
    login(client, "admin")
    response = upload(client, f"姓名,手机号,村代码\n周杰,12,{VILLAGE_A}\n".encode("gbk"), "名单.csv")
    assert response.status_code == 422
    assert re.search(r"<td>2</td><td>手机号</td>", page(response))


def test_a_cell_over_the_csv_field_limit_is_a_422_not_a_500(client):
    login(client, "admin")
    data = f"name,phone,area_code\n\"{'x' * (csv.field_size_limit() + 1)}\",13900000001,{VILLAGE_A}\n"
    response = upload(client, data.encode(), "big.csv")
    assert response.status_code == 422 and re.search(r"<td>2</td><td></td>", page(response))


def test_the_checkbox_retires_residents_of_the_area_not_in_the_file(app, client):
    login(client, "admin")
    preview = upload(client, f"name,phone,area_code\n陈桂英,13800000015,{VILLAGE_B}\n".encode(), "b.csv")
    assert f'name="replace_area" value="{VILLAGE_B}"' in page(preview)
    response = confirm(client, preview, replace="1", replace_area=VILLAGE_B)
    assert response.status_code == 302
    village = phones(app, VILLAGE_B)
    assert village["+8613800000016"].retired_at is not None and village["+8613800000015"].retired_at is None
    assert "1 retired" in page(client.get("/residents")).replace("已注销 1 人", "1 retired") or \
        "1" in page(client.get("/residents"))


def test_an_unchecked_box_retires_no_one(app, client):
    login(client, "admin")
    preview = upload(client, f"name,phone,area_code\n陈桂英,13800000015,{VILLAGE_B}\n".encode(), "b.csv")
    confirm(client, preview, replace_area=VILLAGE_B)
    assert all(row.retired_at is None for row in phones(app, VILLAGE_B).values())


@pytest.mark.parametrize(("style", "first"), [("zh", "姓名,手机号,微信openid,地区代码,出生年份"),
                                             ("en", "name,phone,wechat_openid,area_code,birth_year")])
def test_templates_in_both_header_styles_import_when_filled_in(app, client, style, first):
    login(client, "admin")
    response = client.get(f"/residents/import/template-{style}.csv")
    text = page(response)
    assert response.status_code == 200 and text.startswith("\ufeff" + first)
    filled = text + f"周杰,13900000001,,{VILLAGE_A}" + "," * 7 + "\r\n"
    preview = upload(client, filled.encode("utf-8"), "filled.csv")
    assert preview.status_code == 200 and confirm(client, preview).status_code == 302
    assert phones(app)["+8613900000001"].name == "周杰"
    assert client.get("/residents/import/template-fr.csv").status_code == 404


def test_a_large_upload_runs_as_a_job_with_a_progress_page(app, client):
    login(client, "admin")
    lines = ["姓名,手机号,村代码"] + [f"居民{n},139{n:08d},{VILLAGE_A}" for n in range(9000)]
    data = ("\n".join(lines) + "\n").encode("gbk")
    assert len(data) > imports.INLINE_BYTES
    preview = upload(client, data, "county.csv")
    assert preview.status_code == 200
    response = confirm(client, preview)
    assert response.status_code == 302 and "/residents/imports/" in response.headers["Location"]
    waiting = page(client.get(response.headers["Location"]))
    assert 'data-status="queued"' in waiting and 'http-equiv="refresh"' in waiting
    run_jobs(app)
    done = page(client.get(response.headers["Location"]))
    assert 'data-status="done"' in done and 'http-equiv="refresh"' not in done
    assert len(phones(app)) == 9000 + 5


def test_an_import_id_is_used_once_and_only_by_admins(app, client):
    login(client, "admin")
    preview = upload(client, f"name,phone,area_code\n周杰,13900000001,{VILLAGE_A}\n".encode(), "a.csv")
    assert confirm(client, preview).status_code == 302
    assert confirm(client, preview).status_code == 404
    assert client.get("/residents/imports/" + "f" * 32).status_code == 404


def test_an_upload_left_at_its_preview_is_deleted_after_a_day(app, client):
    login(client, "admin")
    upload(client, f"name,phone,area_code\n周杰,13900000001,{VILLAGE_A}\n".encode(), "a.csv")
    [left] = list(Path(app.instance_path, "imports").iterdir())
    assert left.stat().st_mode & 0o777 == 0o600
    day_ago = time.time() - imports.ABANDONED_SECONDS - 1
    os.utime(left, (day_ago, day_ago))
    upload(client, f"name,phone,area_code\n吴昊,13900000002,{VILLAGE_A}\n".encode(), "b.csv")
    assert [path.name for path in Path(app.instance_path, "imports").iterdir()] != [left.name]
    assert not left.exists()


def test_ignored_columns_are_named_in_the_readers_language(app, client):
    login(client, "admin")
    preview = upload(client, f"姓名,手机号,村代码,备注\n周杰,13900000001,{VILLAGE_A},x\n".encode("gbk"), "名单.csv")
    assert "列“备注”不是花名册的列，已忽略。" in page(preview)
    assert re.search(r"<td>备注</td><td>忽略</td>", page(preview))
