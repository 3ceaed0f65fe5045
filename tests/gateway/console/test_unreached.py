"""The unreached list's page and CSV (gateway/web/console/people.py) and the progress page:
reached and confirmed as two counts, the list in two sections, the rule said on the page."""
from __future__ import annotations

import csv
import io

import pytest

from tests.gateway.conftest import RESIDENTS
from tests.gateway.console.conftest import login, page
from tests.gateway.delivery.conftest import by_address, hand_over, planned, reach

pytestmark = pytest.mark.integration

RULE = "对严重和特别严重的通知，视障居民和65岁及以上居民必须确认"


def delivered(app, announcement_id, *residents):
    rows = by_address(app, announcement_id)
    ids = [rows[("sms", RESIDENTS[key][0].phone)].id for key in residents]
    hand_over(app, announcement_id, ids)
    reach(app, ids)


def test_two_sections_and_the_rule_in_chinese(app, client):
    announcement_id = planned(app, severity="severe", channels=["sms", "voice"])
    delivered(app, announcement_id, "blind", "elderly", "young sms only")
    login(client, "approver")
    html = page(client.get(f"/announcements/{announcement_id}/unreached"))
    assert RULE in html
    not_reached, unconfirmed = html.split('id="unconfirmed"')
    assert '<span class="count">4</span>' in not_reached.split('id="not-reached"')[1]
    assert unconfirmed.startswith('>已送达、未确认: <span class="count">2</span>')
    for key in ("young follower", "deaf", "drill tester", "opted out of wechat"):
        assert RESIDENTS[key][0].name in not_reached and RESIDENTS[key][0].name not in unconfirmed
    for key in ("blind", "elderly"):
        assert RESIDENTS[key][0].name in unconfirmed and RESIDENTS[key][0].name not in not_reached
    assert RESIDENTS["young sms only"][0].name not in html  # reached; no confirmation asked
    rows = list(csv.reader(io.StringIO(page(client.get(
        f"/announcements/{announcement_id}/unreached.csv")).lstrip("\ufeff"))))
    assert rows[0] == ["姓名", "电话", "区划代码", "地区", "类别", "已尝试"]
    assert {row[0]: row[4] for row in rows[1:]} == {
        "王小明": "未送达", "刘芳": "未送达", "赵磊": "未送达", "杨洋": "未送达",
        "张伟": "已送达、未确认", "陈桂英": "已送达、未确认"}
    detail = page(client.get(f"/announcements/{announcement_id}"))
    assert RULE in detail and '已确认： <strong id="confirmed">0</strong>' in detail
    progress = client.get(f"/announcements/{announcement_id}/progress.json").get_json()
    assert (progress["reached_residents"], progress["confirmed_residents"],
            progress["not_reached_residents"], progress["unconfirmed_residents"]) == (3, 0, 4, 2)


def test_a_moderate_notice_says_no_one_must_confirm(app, client):
    announcement_id = planned(app, channels=["sms"])
    delivered(app, announcement_id, "elderly")
    login(client, "approver")
    html = page(client.get(f"/announcements/{announcement_id}/unreached"))
    assert "本通知不属于严重或特别严重：无需居民确认。" in html
    assert RESIDENTS["elderly"][0].name not in html
