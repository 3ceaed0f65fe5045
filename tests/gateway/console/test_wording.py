"""Server texts in the officer's language (gateway/web/console/wording.py): roster errors,
the unreached CSV's "tried" column, audit details, and what has no wording passing through."""
from __future__ import annotations

import csv
import io
import re

import pytest

from gateway.web.console import wording
from tests.gateway.conftest import VILLAGE_A
from tests.gateway.console.conftest import login, page
from tests.gateway.console.test_roster_import import upload

pytestmark = pytest.mark.integration


def test_roster_errors_are_listed_in_chinese(client):
    login(client, "admin")
    roster = (f"姓名,手机号,村代码,出生年份\n周杰,abc,{VILLAGE_A},1990\n"
              f"李四,13900000002,999999999999,19x0\n,13900000003,{VILLAGE_A},1990\n")
    html = page(upload(client, roster.encode("gbk"), "名单.csv"))
    problems = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td><td>(.*?)</td></tr>", html)
    assert ("2", "手机号", "&#39;abc&#39; 不是电话号码。") in problems
    assert ("3", "出生年份", "&#39;19x0&#39; 不是年份。") in problems
    assert ("4", "姓名", "为空。") in problems
    assert all(not re.search(r"\b(is|not|the|a)\b", problem) for _, _, problem in problems), problems


def test_a_roster_problem_without_a_known_wording_passes_through(app):
    with app.test_request_context():
        assert wording.roster_problem("something new went wrong") == "something new went wrong"
        assert wording.roster_problem("'12' is not a phone number") == "'12' 不是电话号码。"


def test_the_unreached_csv_says_what_was_tried_in_chinese(app):
    tried = {"channel": "sms", "status": "failed", "attempts": 3,
             "at": "2026-12-02T02:58:00+00:00", "error": "[30003] Unreachable"}
    with app.test_request_context():
        assert wording.delivery_try(tried) == "短信 失败 尝试 3 次 2026年12月2日 10:58 ([30003] Unreachable)"
    people = [{"name": "周杰", "phone": "+8613900000001", "area_code": VILLAGE_A,
               "section": "not_reached", "tried": [tried, {**tried, "channel": "voice",
                                                           "status": "queued", "error": None,
                                                           "attempts": 1, "at": None}]}]
    from gateway.delivery import reports
    with app.test_request_context():
        text = reports.unreached_csv(people, ["姓名", "电话", "地区代码", "分区", "已尝试"],
                                     describe_try=wording.delivery_try)
    row = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))[1]
    assert row[-1] == ("短信 失败 尝试 3 次 2026年12月2日 10:58 ([30003] Unreachable); "
                       "语音电话 排队 尝试 1 次")


def test_an_audit_detail_that_is_not_json_or_known_stays_as_written(app):
    with app.test_request_context():
        assert wording.audit_detail("发送前撤回") == "发送前撤回"
        assert wording.audit_detail("withdrawn before sending") == "发送前撤回"
        assert wording.audit_action("something_new") == "something_new"
        assert wording.audit_target("announcement:7") == "通知 7"
        assert wording.audit_detail('{"rows": 3, "area": null, "via": "api"}') == "行数: 3；途径: api"
