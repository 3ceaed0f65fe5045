"""The disclosure report's page and CSV, and the weak segments on the approve page with the
admins' list of thinly covered residents (gateway/web/console/announcements.py, people.py)."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from gateway.store.schema import audit_log
from tests.gateway.console.conftest import login, logout, page
from tests.gateway.delivery.conftest import by_address, create, hand_over, planned, reach
from tests.gateway.delivery.test_disclosure import PEOPLE, SPEAKER, TOWN, segments_county  # noqa: F401

pytestmark = pytest.mark.integration


def test_the_report_page_and_csv_in_chinese_equal_the_status(app, client, segments_county):
    announcement_id = planned(app, areas=[TOWN], severity="severe")
    rows = by_address(app, announcement_id)
    ids = [rows[("sms", PEOPLE["blind speaker"][2]["phone"])].id,
           rows[("loudspeaker", "spk-pilot")].id]
    hand_over(app, announcement_id, ids)
    reach(app, ids[:1])
    reach(app, ids[1:], "confirmed")
    login(client, "author")  # counts only: every role
    html = page(client.get(f"/announcements/{announcement_id}/disclosure"))
    assert "钦州市人民政府新闻办公室" in html and "信息公开报告" in html and "暴雨红色预警" in html
    assert "首先经短信" in html and "有喇叭村" in html and "已播放" in html
    status = client.get(f"/announcements/{announcement_id}/progress.json").get_json()
    rows_csv = list(csv.reader(io.StringIO(page(client.get(
        f"/announcements/{announcement_id}/disclosure.csv")).lstrip("\ufeff"))))
    assert rows_csv[0][:6] == ["乡镇", "年龄", "障碍", "语言", "目标人数", "已送达"]
    assert {row[3] for row in rows_csv[1:rows_csv.index([])]} == {"中文", "合计"}
    total = next(row for row in rows_csv if row and row[0] == "合计")
    # town, age, impairment, language, targeted, reached, first by SMS/call/WeChat/in person,
    # confirmed…
    assert (int(total[4]), int(total[5]), int(total[10]), int(total[11]), int(total[12])) == (
        9, status["reached_residents"], status["confirmed_residents"],
        status["unconfirmed_residents"], status["not_reached_residents"]) == (9, 1, 0, 1, 8)
    villages = rows_csv[rows_csv.index([]) + 1:]
    assert villages[0][0] == "村" and ["有喇叭村", "4", "1", "1", "1", "0"] in villages
    assert "/disclosure" in page(client.get(f"/announcements/{announcement_id}"))


def test_a_notice_not_sent_has_no_report_yet(app, client, segments_county):
    announcement_id = create(app, areas=[TOWN])
    login(client, "author")
    response = client.get(f"/announcements/{announcement_id}/disclosure")
    assert response.status_code == 409 and "本通知尚未发出" in page(response)
    assert client.get(f"/announcements/{announcement_id}/disclosure.csv").status_code == 409


def test_weak_segments_on_the_approve_page_and_who_they_are_for_admins(app, client,
                                                                          segments_county):
    announcement_id = create(app, areas=[TOWN])
    thin = (f"/announcements/{announcement_id}/thin?town={TOWN}&age_band=18-39"
            "&impairment=hearing")
    login(client, "approver")
    html = page(client.get(f"/announcements/{announcement_id}/approve"))
    assert "覆盖薄弱的群体" in html and "在无喇叭村登记一台广播（1 位居民）" in html
    assert "请有喇叭村的网格员上门告知（1 位居民）" in html and "/thin?" not in html
    refused = client.get(thin)
    assert refused.status_code == 403 and "聋甲" not in page(refused)
    logout(client)
    login(client, "admin")
    assert "/thin?" in page(client.get(f"/announcements/{announcement_id}/approve"))
    listed = page(client.get(thin))
    assert "聋甲" in listed and "聋乙" in listed and "聋丙" not in listed  # WeChat: 2 paths
    assert "网格员上门" in listed and PEOPLE["deaf phone speaker"][2]["phone"] in listed
    assert client.get(thin.replace("hearing", "deaf")).status_code == 400
    with app.extensions["engine"].connect() as conn:
        viewed = conn.execute(select(audit_log.c.actor).where(
            audit_log.c.action == "view_thin_residents")).scalars().all()
    assert viewed == ["admin"]
