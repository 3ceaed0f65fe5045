"""What every console page does (gateway/web/console/__init__.py): CSRF tokens on forms,
security headers, no inline scripts or styles."""
from __future__ import annotations

import re
import time

import pytest

from tests.gateway.conftest import DISTRICT
from tests.gateway.console.conftest import login, logout, page, state_of, submit

pytestmark = pytest.mark.integration

SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
                    "Referrer-Policy")


@pytest.mark.parametrize("path", ["/login", "/logout", "/language", "/residents/import"])
def test_a_form_without_its_csrf_token_is_refused_and_leads_back(client, path):
    """Nothing is done; the officer is sent back to the page the form was on (here none is
    known: the list), told to try again, never that the form "expired"."""
    login(client, "admin")
    response = client.post(path, data={"name": "author", "password": "author-password"},
                           headers={"Referer": "http://localhost/residents?q=x"})
    assert response.status_code == 302 and response.location == "/residents?q=x"
    html = page(client.get(response.location))
    assert "页面需要更新，尚未执行任何操作。请重试。" in html and "表单已过期" not in html
    assert "admin" in html  # still logged in: /logout did not log out


def test_a_compose_form_without_its_token_comes_back_filled_in(client):
    login(client, "author")
    response = client.post("/announcements/new", data={"headline": "保留的标题", "body": "保留的正文",
                                                      "preview": "1"})
    assert response.status_code == 400
    html = page(response)
    assert "表单需要更新，尚未发送任何内容" in html and "表单已过期" not in html
    assert 'value="保留的标题"' in html and "保留的正文</textarea>" in html


@pytest.mark.parametrize("path", ["/announcements/draft.json", "/announcements/draft-audio",
                                  "/session/keepalive"])
def test_a_script_s_request_without_its_token_is_refused_in_json(client, path):
    login(client, "author")
    response = client.post(path, data={"headline": "x"})
    assert response.status_code == 400 and response.json["error"].startswith("页面需要更新")


def test_a_form_sent_after_the_session_timed_out_leads_to_the_login_page(app, client):
    """The session ended (its CSRF token with it): log in again, then back to compose, whose
    page puts back the draft the browser kept."""
    login(client, "author")
    app.config["SESSION_MINUTES"] = 1 / 600
    time.sleep(0.2)
    response = client.post("/announcements/new", data={"headline": "h", "submit": "1"})
    assert response.status_code == 302
    assert response.location == "/login?next=/announcements/new"
    assert "登录已超时" in page(client.get(response.location))


def test_actions_without_csrf_token_change_nothing(app, client):
    login(client, "author")
    announcement_id = submit(client)
    logout(client)
    login(client, "approver")
    response = client.post(f"/announcements/{announcement_id}/approve", data={"confirmed": "1"})
    assert response.status_code == 302 and state_of(app, announcement_id) == "awaiting_approval"


def test_the_json_api_keeps_working_without_csrf(api):
    response = api("author").post("/api/v1/announcements", json={
        "headline": "h", "body": "b", "areas": [DISTRICT]})
    assert response.status_code == 201


def test_every_response_carries_the_security_headers(app, client, api):
    login(client, "author")
    announcement_id = submit(client)
    responses = [client.get("/login"), client.get("/"), client.get("/static/console.js"),
                 client.get(f"/a/{announcement_id}"), client.get("/no-such-page"),
                 client.post("/login"), api("admin").get("/api/v1/outbox")]
    for response in responses:
        for header in SECURITY_HEADERS:
            assert header in response.headers, (response.request.path, header)
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


def test_pages_have_no_inline_scripts_or_styles(client):
    login(client, "author")
    for path in ("/", "/announcements/new"):
        html = page(client.get(path))
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert " style=" not in html and "<style" not in html
