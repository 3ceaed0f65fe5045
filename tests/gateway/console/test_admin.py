"""The audit log and the outbox pages (gateway/web/console/admin.py)."""
from __future__ import annotations

import pytest

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
    assert "create" in html and "login" in html


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
