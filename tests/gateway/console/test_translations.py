"""The console's languages: Chinese by default, English on request, and the compiled catalogs."""
from __future__ import annotations

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.gateway.console.conftest import csrf_token, login, page

pytestmark = pytest.mark.integration


def test_chinese_by_default_and_english_on_request(client):
    assert "登录" in page(client.get("/login"))
    token = csrf_token(client)
    client.post("/language", data={"csrf_token": token, "language": "en", "next": "/login"})
    html = page(client.get("/login"))
    assert "Log in" in html and "登录" not in html
    login(client, "author")
    assert "Compose an announcement" in page(client.get("/"))


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
