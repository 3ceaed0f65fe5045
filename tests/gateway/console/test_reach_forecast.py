"""The compose preview says when nine in ten residents will have been reached (the preview's
``reach_forecast``), in Chinese and in English, and what it assumed about calls."""
from __future__ import annotations

import re

import pytest

from tests.gateway.console.conftest import compose_form, csrf_token, login, page

pytestmark = pytest.mark.integration


def test_the_preview_forecasts_the_reach_in_both_languages(app, client):
    app.config.update(TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t",
                      TWILIO_FROM_NUMBER="+15005550006", VOICE_CONCURRENT_CALLS=10)
    login(client, "author")
    form = {**compose_form(client, channels=["sms", "voice"]), "preview": "1"}
    html = page(client.post("/announcements/new", data=form))
    forecast = html[html.index('id="reach-forecast"'):]
    forecast = forecast[:forecast.index("</p>")]
    assert re.search(r"预计约 [\d.]+ 分钟（[\d.]+ 秒）后九成居民收到通知", forecast)
    assert "10 条线路" in forecast and "最先送达的渠道" in forecast
    client.post("/language", data={"csrf_token": csrf_token(client, "/"), "language": "en",
                                   "next": "/"})
    html = page(client.post("/announcements/new", data={**form, "csrf_token": csrf_token(client, "/")}))
    forecast = html[html.index('id="reach-forecast"'):]
    assert re.search(r"Nine in ten residents reached after about [\d.]+ minutes", forecast)
    assert "one of 10 lines" in forecast
