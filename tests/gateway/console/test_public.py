"""The public full text of an announcement (/a/<id>, gateway/web/console/public.py)."""
from __future__ import annotations

import re

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


def test_the_public_page_says_when_in_the_offices_time_and_words(app, client):
    """``2026年12月2日 18:58``: no zone offset, no seconds; ``OFFICE_TIMEZONE`` decides the hour."""
    login(client, "author")
    announcement_id = submit(client, expires="2030-06-01T18:30")  # read in the office's zone
    logout(client)
    login(client, "approver")
    approve(client, announcement_id)
    logout(client)
    html = page(client.get(f"/a/{announcement_id}"))
    issued = re.search(r'<p class="issued">.*? · (.*?)</p>', html).group(1)
    assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", issued), issued
    assert "有效期至 2030年6月1日 18:30" in html
    app.config["OFFICE_TIMEZONE"] = "Europe/London"  # an office elsewhere: the same moment
    assert "2030年6月1日 11:30" in page(client.get(f"/a/{announcement_id}"))


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
