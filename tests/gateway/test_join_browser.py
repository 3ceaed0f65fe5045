"""Self-registration in real headless Chromium (#21): a resident registers on the village's page
with the code read from the SMS outbox, an admin approves, and the resident later deletes it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from channels import outbox
from gateway.delivery import providers, queues
from gateway.store.schema import residents, self_registrations
from tests.gateway.conftest import VILLAGE_A

playwright_api = pytest.importorskip("playwright.sync_api")
from tests.gateway.test_console_browser import (live_server, log_in, log_out,  # noqa: E402,F401
                                                page)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PHONE = "+8613900000031"
SCREENSHOT = Path("/tmp/tongbao-join.png")


def sms_code(app, phone: str) -> str:
    """The last code the SMS channel (the outbox: no provider configured) sent to ``phone``."""
    records, _total = outbox.read(providers.outbox_path(app), channel="sms", limit=10_000)
    return re.search(r"\d{6}", [r for r in records if r["address"] == phone][-1]["text"]).group(0)


def resident_with(app, phone: str):
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(residents).where(residents.c.phone == phone)).first()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_register_with_the_sms_code_approval_and_deletion(app, page, live_server):
    expect = playwright_api.expect
    page.set_viewport_size({"width": 390, "height": 844})  # a phone, as the QR code is scanned
    page.goto(f"{live_server}/join/{VILLAGE_A}")
    expect(page.locator("#village")).to_have_text("沙埠村")
    page.fill("input[name=name]", "周扫码")
    page.fill("input[name=phone]", "139 0000 0031")
    page.check("#need-visually_impaired input[name=need_visually_impaired]")
    page.check("input[name=consent_visually_impaired]")
    page.check("input[name=consent_contact]")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("输入验证码")
    page.fill("input[name=code]", sms_code(app, PHONE))
    page.click("button[type=submit]")
    expect(page.locator("#registered")).to_have_text("谢谢，您已登记")
    assert resident_with(app, PHONE).pending_review is True

    log_in(page, live_server, "admin")
    page.click("header nav >> text=自助登记")
    row = page.locator("#pending-registrations tr", has_text="周扫码")
    expect(row.locator("td.match")).to_have_text("新居民")
    expect(row.locator("td.needs")).to_have_text("视障")
    row.locator("button[name=approve]").click()
    expect(page.locator(".flash-success")).to_contain_text("登记已批准")
    expect(page.locator("#no-registrations")).to_be_visible()
    approved = resident_with(app, PHONE)
    assert approved.pending_review is False and approved.visually_impaired is True
    log_out(page)

    with app.app_context():  # as if the minute between two codes to one number had passed
        queues.connection().delete(f"tongbao:join:gap:{PHONE}")
    page.goto(f"{live_server}/join/{VILLAGE_A}")
    page.click("#manage-link")
    page.fill("input[name=phone]", "13900000031")
    page.click("button[type=submit]")
    page.fill("input[name=code]", sms_code(app, PHONE))
    page.click("button[type=submit]")
    expect(page.locator(".held-name")).to_have_text("周扫码")
    expect(page.locator(".held-status")).to_have_text("已在名册中")
    page.click("#delete-button")  # not yet confirmed: nothing is deleted
    expect(page.locator(".flash-error")).to_contain_text("未删除任何信息")
    page.check("#confirm-delete")
    page.click("#delete-button")
    expect(page.locator("#deleted")).to_have_text("您的登记已删除")
    assert resident_with(app, PHONE) is None
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(self_registrations)).first() is None
        erased = conn.execute(select(residents).where(residents.c.id == approved.id)).one()
    assert erased.name == "" and erased.retired_at is not None
