"""The audit log and the outbox pages (gateway/web/console/admin.py)."""
from __future__ import annotations

import re
from datetime import timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from gateway.store.schema import audit_log
from tests.conftest import run_jobs
from tests.gateway.conftest import RESIDENTS
from tests.gateway.console.conftest import login, logout, page, released, submit

pytestmark = pytest.mark.integration


def test_the_audit_log_shows_who_did_what_to_approvers_only(client):
    login(client, "author")
    submit(client)
    assert client.get("/audit").status_code == 403
    logout(client)
    login(client, "admin")
    html = page(client.get("/audit?actor=author"))
    assert "create" in html and "login" in html  # the action names, kept for the filter


def test_the_audit_log_speaks_chinese_in_the_offices_time(app, client):
    """Actions, targets and details in words, times in Asia/Shanghai: ``2026年12月2日 18:58:23``."""
    announcement_id = released(client)
    logout(client)
    login(client, "admin")
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td data-action=\"(\w+)\">(.*?)</td>"
                      r"<td>(.*?)</td><td class=\"detail\">(.*?)</td></tr>",
                      page(client.get("/audit?action=approve")))
    assert len(rows) == 1
    when, actor, action, word, target, detail = rows[0]
    assert (actor, action, word, target) == ("approver", "approve", "已批准", f"通知 {announcement_id}")
    assert detail == "类型: 真实预警；演练: 否"
    with app.extensions["engine"].connect() as conn:
        at = conn.execute(select(audit_log.c.at).where(audit_log.c.action == "approve")).scalar_one()
    local = at.replace(tzinfo=timezone.utc).astimezone(ZoneInfo("Asia/Shanghai"))
    assert when == f"{local.year}年{local.month}月{local.day}日 {local:%H:%M:%S}"
    assert "<option value=\"approve\" selected>已批准</option>" in page(client.get("/audit?action=approve"))


def test_the_outbox_shows_what_residents_would_receive(app, client):
    announcement_id = released(client)
    run_jobs(app)
    # Phones and texts: admins only, with a message in the console's language.
    refused = client.get(f"/outbox?announcement={announcement_id}")
    assert refused.status_code == 403 and "您的角色无权查看此页面" in page(refused)
    assert "/outbox" not in page(client.get("/"))
    logout(client)
    login(client, "admin")
    html = page(client.get(f"/outbox?announcement={announcement_id}&channel=sms"))
    assert RESIDENTS["young sms only"][0].phone in html and "暴雨红色预警" in html
    # Its times in the office's words, not the outbox file's ISO text.
    assert re.search(r"<td>\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}:\d{2}</td>", html)
    assert "+00:00" not in html
