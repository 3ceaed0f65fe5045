"""The people pages (gateway/web/console/people.py): the roster import, residents searched and
edited, devices, and the unreached list for grid workers."""
from __future__ import annotations

import io
import json
import re

import pytest
from sqlalchemy import func, select

from gateway.store import roster
from gateway.store.schema import audit_log, devices, residents
from tests.conftest import run_jobs
from tests.gateway.conftest import RESIDENTS, VILLAGE_A
from tests.gateway.console.conftest import (CSRF_FIELD, approve, csrf_token, login, logout, page,
                                            submit)

pytestmark = pytest.mark.integration

ROSTER_HEADER = ("name,phone,wechat_openid,area_code,birth_year,visually_impaired,"
                 "hearing_impaired,has_smartphone,language,opt_out,test_audience\n")


def upload(client, content: str):
    token = csrf_token(client, "/residents/import")
    return client.post("/residents/import", content_type="multipart/form-data",
                       data={"csrf_token": token,
                             "roster": (io.BytesIO(content.encode("utf-8")), "roster.csv")})


def resident_count(app) -> int:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(func.count()).select_from(residents)).scalar_one()


def test_a_bad_roster_lists_every_bad_row_and_saves_nothing(app, client):
    login(client, "admin")
    before = resident_count(app)
    response = upload(client, ROSTER_HEADER
                      + f"好人,13800000021,,{VILLAGE_A},1980,0,0,1,zh,,0\n"
                      + f"坏号码,12345,,{VILLAGE_A},1980,0,0,1,zh,,0\n"
                      + "无地区,13800000023,,450702999999,1980,0,0,1,zh,,0\n")
    html = page(response)
    assert response.status_code == 422 and 'id="csv-errors"' in html
    assert re.search(r"<td>3</td><td>phone</td>", html)
    assert re.search(r"<td>4</td><td>area_code</td>", html)
    assert resident_count(app) == before


def test_a_good_roster_is_previewed_then_imported(app, client):
    login(client, "admin")
    before = resident_count(app)
    response = upload(client, ROSTER_HEADER + f"新居民,13800000031,,{VILLAGE_A},1985,0,0,1,zh,,0\n")
    assert response.status_code == 200 and resident_count(app) == before
    import_id = re.search(r'action="/residents/import/([0-9a-f]{32})"', page(response)).group(1)
    response = client.post(f"/residents/import/{import_id}", data={"csrf_token": csrf_token(client, "/residents")})
    assert response.status_code == 302 and resident_count(app) == before + 1


def test_a_roster_upload_needs_a_file_and_an_admin(client):
    login(client, "admin")
    token = csrf_token(client, "/residents/import")
    assert client.post("/residents/import", data={"csrf_token": token}).status_code == 400
    logout(client)
    login(client, "author")
    assert client.get("/residents/import").status_code == 403


def test_residents_can_be_searched_and_edited_with_the_roster_rules(app, client):
    login(client, "admin")
    html = page(client.get("/residents?q=李娜"))
    resident_id = int(re.search(r"/residents/(\d+)/edit", html).group(1))
    edit_page = page(client.get(f"/residents/{resident_id}/edit"))
    token = CSRF_FIELD.search(edit_page).group(1)
    fields = {"csrf_token": token, "name": "李娜", "phone": "12345", "area_code": VILLAGE_A,
              "language": "zh", "birth_year": "1990", "has_smartphone": "1"}
    refused = client.post(f"/residents/{resident_id}/edit", data=fields)
    assert refused.status_code == 422 and 'class="field-error"' in page(refused)
    saved = client.post(f"/residents/{resident_id}/edit",
                        data={**fields, "phone": "13800000099", "hearing_impaired": "1"})
    assert saved.status_code == 302
    with app.extensions["engine"].connect() as conn:
        row = conn.execute(select(residents).where(residents.c.id == resident_id)).one()
    assert row.phone == "+8613800000099" and row.hearing_impaired


def test_an_edit_keeps_written_and_spoken_languages_apart(app, client):
    login(client, "admin")
    html = page(client.get("/residents?q=李娜"))
    resident_id = int(re.search(r"/residents/(\d+)/edit", html).group(1))
    edit_page = page(client.get(f"/residents/{resident_id}/edit"))
    assert "口语，用于电话" in edit_page and 'name="spoken_language"' in edit_page
    fields = {"csrf_token": CSRF_FIELD.search(edit_page).group(1), "name": "李娜",
              "phone": "13800000012", "area_code": VILLAGE_A, "language": "zh-CN",
              "spoken_language": "zh-yue", "birth_year": "1990", "has_smartphone": "1"}
    assert client.post(f"/residents/{resident_id}/edit", data=fields).status_code == 302
    assert 'value="yue"' in page(client.get(f"/residents/{resident_id}/edit"))
    refused = client.post(f"/residents/{resident_id}/edit", data={**fields, "spoken_language": "xx-!!"})
    assert refused.status_code == 422 and "is not a language tag" in page(refused)
    with app.extensions["engine"].connect() as conn:
        row = conn.execute(select(residents).where(residents.c.id == resident_id)).one()
    assert (row.language, row.spoken_language) == ("zh", "yue")


def test_a_number_found_invalid_is_marked_in_the_list_until_the_phone_is_edited(app, client):
    phone = RESIDENTS["young sms only"][0].phone
    with app.extensions["engine"].begin() as conn:
        resident_id = conn.execute(select(residents.c.id)
                                   .where(residents.c.phone == phone)).scalar_one()
        assert roster.mark_phone_invalid(conn, resident_id, phone, "[21211] invalid phone number")
    login(client, "admin")
    mark = re.compile(r'<span class="badge invalid" title="\[21211\] invalid phone number">号码无效</span>')
    assert mark.search(page(client.get("/residents?q=李娜")))
    token = CSRF_FIELD.search(page(client.get(f"/residents/{resident_id}/edit"))).group(1)
    fields = {"csrf_token": token, "name": "李娜", "phone": phone, "area_code": VILLAGE_A,
              "language": "zh", "birth_year": "1990", "has_smartphone": "1"}
    assert client.post(f"/residents/{resident_id}/edit", data=fields).status_code == 302
    assert mark.search(page(client.get("/residents?q=李娜")))  # the same number: still dead
    fields["phone"] = "13800000098"
    assert client.post(f"/residents/{resident_id}/edit", data=fields).status_code == 302
    assert "号码无效" not in page(client.get("/residents?q=李娜"))


def test_devices_show_online_and_offline(app, client):
    with app.extensions["engine"].begin() as conn:
        conn.execute(devices.update().where(devices.c.device_id == "spk-a").values(online=True))
        conn.execute(devices.update().where(devices.c.device_id == "spk-b").values(online=False))
    login(client, "author")
    html = page(client.get("/devices"))
    assert re.search(r"spk-a.*?在线", html, re.S) and re.search(r"spk-b.*?离线", html, re.S)


def test_a_device_never_seen_says_so_and_one_seen_says_when(app, client):
    from datetime import datetime, timezone
    with app.extensions["engine"].begin() as conn:
        conn.execute(devices.update().where(devices.c.device_id == "spk-b")
                     .values(online=None, last_seen=datetime(2026, 12, 1, 2, 30, tzinfo=timezone.utc)))
    login(client, "author")
    html = page(client.get("/devices"))
    status = dict(re.findall(r"<td>(spk-[a-z]+)</td>.*?<td class=\"device-status\">(.*?)</td>", html, re.S))
    assert "从未上线" in status["spk-a"] and "未知" not in status["spk-a"]
    assert "最后上线" in status["spk-b"] and "从未上线" not in status["spk-b"]


def test_an_admin_sets_the_languages_of_a_village_and_of_a_device(app, client):
    """#19, item 5: the devices page shows what each loudspeaker speaks and, for admins, sets it."""
    login(client, "admin")
    token = csrf_token(client, "/devices")
    saved = client.post("/devices/languages", data={"csrf_token": token, "area_code": VILLAGE_A,
                                                    "languages": "cmn, yue"})
    assert saved.status_code == 303
    client.post("/devices/languages", data={"csrf_token": token, "device_id": "spk-b",
                                            "languages": "zh-yue"})
    html = page(client.get("/devices"))
    spoken = dict(re.findall(r"<td>(spk-[a-z]+)</td>.*?<td class=\"speaker-languages\">(.*?)</form>",
                             html, re.S))
    assert re.search(r"普通话|中文", spoken["spk-a"]) and "粤语" in spoken["spk-a"] \
        and "所在村" in spoken["spk-a"]
    assert "粤语" in spoken["spk-b"] and "本设备" in spoken["spk-b"]
    refused = client.post("/devices/languages", data={"csrf_token": token, "device_id": "spk-a",
                                                      "languages": "klingon!!"})
    assert refused.status_code == 400 and "flash-error" in page(refused)
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(devices.c.spoken_languages)
                            .where(devices.c.device_id == "spk-a")).scalar_one() is None
        assert conn.execute(select(func.count()).select_from(audit_log).where(
            audit_log.c.action == "speaker_languages")).scalar_one() == 2
    login(client, "author")
    assert client.post("/devices/languages", data={
        "csrf_token": csrf_token(client, "/devices"), "device_id": "spk-a",
        "languages": "yue"}).status_code == 403


def test_every_page_links_the_favicon(client):
    html = page(client.get("/login"))
    assert '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">' in html
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"


def test_the_unreached_list_as_a_printable_page_and_as_csv(app, client):
    login(client, "author")
    announcement_id = submit(client, channels=["wechat"])
    logout(client)
    login(client, "approver")
    approve(client, announcement_id)
    run_jobs(app)
    elderly = RESIDENTS["elderly"][0]
    logout(client)
    login(client, "author")
    for path in ("unreached", "unreached.csv"):
        refused = client.get(f"/announcements/{announcement_id}/{path}")
        assert refused.status_code == 403 and elderly.phone not in page(refused)
        assert "您的角色无权查看此页面" in page(refused)
    logout(client)
    login(client, "approver")
    printable = page(client.get(f"/announcements/{announcement_id}/unreached"))
    assert elderly.name in printable and "新屋村" in printable
    csv_text = page(client.get(f"/announcements/{announcement_id}/unreached.csv"))
    assert csv_text.startswith("\ufeff") and elderly.phone in csv_text
    only_a = page(client.get(f"/announcements/{announcement_id}/unreached.csv?area={VILLAGE_A}"))
    assert elderly.phone not in only_a
    with app.extensions["engine"].connect() as conn:
        exports = conn.execute(select(audit_log.c.actor, audit_log.c.target, audit_log.c.detail)
                               .where(audit_log.c.action == "export_unreached")
                               .order_by(audit_log.c.id)).all()
    assert {(actor, target) for actor, target, _ in exports} == \
        {("approver", f"announcement:{announcement_id}")}
    details = [json.loads(detail) for _, _, detail in exports]
    assert [(d["via"], d["format"], d["area"]) for d in details] == [
        ("console", "page", None), ("console", "csv", None), ("console", "csv", VILLAGE_A)]
    assert details[0]["rows"] == details[1]["rows"] > details[2]["rows"]


def test_the_resident_list_is_for_admins_only(client):
    """Phones, birth years and impairments: not for authors or approvers, nor in their menu."""
    for role in ("author", "approver"):
        login(client, role)
        refused = client.get("/residents?q=李娜")
        assert refused.status_code == 403 and "您的角色无权查看此页面" in page(refused)
        assert 'href="/residents"' not in page(client.get("/"))
        logout(client)
    login(client, "admin")
    assert client.get("/residents?q=李娜").status_code == 200
    assert 'href="/residents"' in page(client.get("/"))
