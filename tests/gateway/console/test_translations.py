"""The console's languages: Chinese by default, English on request, and the compiled catalogs."""
from __future__ import annotations

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.gateway.console.conftest import csrf_token, login, page, released

pytestmark = pytest.mark.integration


def test_chinese_by_default_and_english_on_request(client):
    assert "登录" in page(client.get("/login"))
    token = csrf_token(client)
    client.post("/language", data={"csrf_token": token, "language": "en", "next": "/login"})
    html = page(client.get("/login"))
    assert "Log in" in html and "登录" not in html
    login(client, "author")
    assert "Compose an announcement" in page(client.get("/"))


def test_the_paused_banner_does_not_promise_the_pause_ends_by_itself(client):
    """A pause may need an admin (a wrong WeChat app id or template id): the words fit both."""
    announcement_id = released(client)  # its page shows the progress, with the banner
    html = page(client.get(f"/announcements/{announcement_id}"))
    assert 'data-text="此渠道暂停发送（会自动重试；写明原因的，请先处理该原因）："' in html
    assert "自动恢复" not in html
    client.post("/language", data={"csrf_token": csrf_token(client, "/"), "language": "en", "next": "/"})
    html = page(client.get(f"/announcements/{announcement_id}"))
    assert ('data-text="Sending paused on this channel (tried again automatically; '
            'fix the cause where one is named):"') in html
    assert "resumes by itself" not in html
    script = page(client.get("/static/console.js"))
    assert "banner.dataset.text" in script  # the words the script shows are the page's


def test_compiled_catalogs_match_their_sources():
    """The .mo files are committed; a clean clone must get the current translations."""
    import gateway
    from pathlib import Path
    root = Path(gateway.__file__).parent / "translations"
    for language in ("zh", "en"):
        folder = root / language / "LC_MESSAGES"
        with open(folder / "messages.po", "rb") as source, open(folder / "messages.mo", "rb") as mo:
            wanted = {m.id: m.string for m in read_po(source) if m.id and m.string}
            compiled = {m.id: m.string for m in read_mo(mo) if m.id}
        assert compiled == wanted, f"run `pybabel compile -d gateway/translations` ({language})"
