"""What every console page does (gateway/web/console/__init__.py): CSRF tokens on forms,
security headers, no inline scripts or styles."""
from __future__ import annotations

import re

import pytest

from tests.gateway.conftest import DISTRICT
from tests.gateway.console.conftest import login, logout, page, state_of, submit

pytestmark = pytest.mark.integration

SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
                    "Referrer-Policy")


@pytest.mark.parametrize("path", ["/login", "/logout", "/language", "/announcements/new",
                                  "/announcements/draft.json", "/announcements/draft-audio",
                                  "/residents/import"])
def test_a_form_without_its_csrf_token_is_refused(client, path):
    login(client, "admin")
    response = client.post(path, data={"name": "author", "password": "author-password"})
    assert response.status_code == 400
    assert "表单已过期" in page(response)


def test_actions_without_csrf_token_change_nothing(app, client):
    login(client, "author")
    announcement_id = submit(client)
    logout(client)
    login(client, "approver")
    response = client.post(f"/announcements/{announcement_id}/approve")
    assert response.status_code == 400 and state_of(app, announcement_id) == "awaiting_approval"


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
