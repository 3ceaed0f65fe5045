"""The public full text of an announcement (/a/<id>, gateway/web/console/public.py)."""
from __future__ import annotations

import pytest

from tests.gateway.console.conftest import approve, login, logout, page, submit

pytestmark = pytest.mark.integration


def test_the_full_text_page_is_public_only_once_released(app, client):
    login(client, "author")
    announcement_id = submit(client, status="exercise")
    logout(client)
    assert client.get(f"/a/{announcement_id}").status_code == 404
    login(client, "approver")
    approve(client, announcement_id)
    logout(client)
    html = page(client.get(f"/a/{announcement_id}"))
    for text in ("暴雨红色预警", "预计未来3小时有特大暴雨。", "请转移到安全地带。",
                 "演练，非真实预警", app.config["OFFICE_NAME"]):
        assert text in html
    assert client.get("/a/9999").status_code == 404


def test_the_severity_shows_in_china_s_four_colours_on_the_public_and_console_pages(client):
    login(client, "author")
    announcement_id = submit(client, severity="severe")
    english = submit(client, severity="minor", language="en", headline="Flash flood",
                     body="The river is rising.", instruction="Move to high ground.")
    assert "严重/橙色·II级" in page(client.get(f"/announcements/{announcement_id}"))
    logout(client)
    login(client, "approver")
    approve(client, announcement_id)
    approve(client, english)
    logout(client)
    html = page(client.get(f"/a/{announcement_id}"))
    assert '<p class="severity severity-severe" id="severity" lang="zh">严重/橙色·II级</p>' in html
    # The public page speaks the notice's language, whatever the console's.
    assert ">Blue · Level IV (minor)</p>" in page(client.get(f"/a/{english}"))
