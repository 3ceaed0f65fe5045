"""Issue 18's "done when", in real headless Chromium at 390 px: a grid worker sees exactly the
unreached people of their grid, goes offline, taps "told in person" for two of them, comes
back online; the office's progress page and the status API then count both as reached and
confirmed, and the call that was ringing at the door is not tried again.

Served as in tests/gateway/test_console_browser.py (a real HTTP server in a thread, Debian's
Chromium); the delivery jobs run in this process (``run_jobs``), against the outbox.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from channels import outbox
from channels.base import StatusUpdate
from gateway.delivery import outcomes, providers
from gateway.store import accounts, grids
from gateway.store.schema import deliveries, grid_visits, residents
from tests.conftest import run_jobs
from tests.gateway.conftest import VILLAGE_A, VILLAGE_B
from tests.gateway.delivery.conftest import by_address, hand_over, planned
from tests.gateway.test_console_browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, live_server  # noqa: F401

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.integration]

GRID_A = VILLAGE_A + "001"
GRID_B = VILLAGE_B + "001"
BLIND_PHONE = "+8613800000013"  # 张伟: called (severe, visually impaired) and sent an SMS
PHONE_WIDTH = 390


@pytest.fixture
def phone(tmp_path):
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        context = browser.new_context(viewport={"width": PHONE_WIDTH, "height": 844},
                                      device_scale_factor=2, has_touch=True)
        context.set_default_timeout(WAIT_MS)
        yield context
        context.close()
        browser.close()


@pytest.fixture
def field(app, county):
    """Grid A (张伟, 李娜) worked by ``gridworker``; grid B (陈桂英) someone else's."""
    with app.extensions["engine"].begin() as conn:
        for code, name in ((GRID_A, "一组"), (GRID_B, "二组")):
            grids.add_grid(conn, code, name, "test")
        accounts.create_user(conn, "gridworker", "grid_worker", "gridworker-password")
        grids.assign(conn, GRID_A, "gridworker", "test")
        for name, code in (("张伟", GRID_A), ("李娜", GRID_A), ("陈桂英", GRID_B)):
            conn.execute(update(residents).where(residents.c.name == name).values(grid=code))


def log_in(page, server, name, landing):
    page.goto(f"{server}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", f"{name}-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}{landing}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_taps_made_offline_reach_the_ledger_and_stop_the_calls(app, api, field, phone,
                                                               live_server):
    expect = playwright_api.expect
    announcement_id = planned(app, areas=[VILLAGE_A, VILLAGE_B], severity="severe")
    call = by_address(app, announcement_id)[("voice", BLIND_PHONE)]
    hand_over(app, announcement_id, [call.id])  # the call is ringing as the worker knocks

    page = phone.new_page()
    log_in(page, live_server, "gridworker", "/grid")
    people = page.locator(f".notice[data-announcement='{announcement_id}'] .person")
    expect(people).to_have_count(2)
    assert {text.split()[0] for text in people.locator("h3").all_inner_texts()} == {"张伟", "李娜"}
    expect(page.locator("text=陈桂英")).to_have_count(0)
    blind = page.locator(".person", has_text="张伟")
    expect(blind.locator(f"a[href='tel:{BLIND_PHONE}']")).to_be_visible()
    expect(blind.locator(".needs")).to_contain_text("视障")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    told = blind.locator("button[data-outcome=told]").bounding_box()
    assert told["height"] >= 48 and told["width"] >= 300  # a button a thumb can hit

    phone.set_offline(True)
    for name in ("张伟", "李娜"):
        page.locator(".person", has_text=name).locator("button[data-outcome=told]").click()
    expect(page.locator("#queue-status")).to_have_text("待发送：2")
    expect(page.locator("#queue-list li")).to_have_count(2)
    expect(blind.locator(".tap-state")).to_contain_text("已存在本机，等待发送")
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(grid_visits.c.id)).first() is None  # nothing got through

    phone.set_offline(False)
    expect(page.locator("#queue-status")).to_have_text("所有走访记录都已发送。")
    expect(blind.locator(".tap-state")).to_contain_text("已记录")
    page.reload()
    expect(page.locator(".person")).to_have_count(0)

    # The office, before any further send: both reached and confirmed, in person.
    status = api("approver").get(f"/api/v1/announcements/{announcement_id}").get_json()
    assert (status["reached_residents"], status["confirmed_residents"]) == (2, 2)
    assert status["deliveries"]["in_person"]["confirmed"] == 2
    office = phone.new_page()
    page.close()
    log_in(office, live_server, "approver", "/")
    office.goto(f"{live_server}/announcements/{announcement_id}")
    expect(office.locator("#progress-rows tr[data-channel=in_person]")).to_contain_text("当面告知")
    expect(office.locator("#reached")).to_have_text("2")
    expect(office.locator("#confirmed")).to_have_text("2")

    # The ringing call is not answered: put back for its next try, which a job takes up.
    with app.app_context():
        outcomes.apply(call.id, StatusUpdate(status="failed", provider_id="P-sent",
                                             error="no-answer", permanent=False),
                       from_provider=True)
    run_jobs(app)
    rows = by_address(app, announcement_id)
    assert (rows[("voice", BLIND_PHONE)].status, rows[("voice", BLIND_PHONE)].attempts) == \
        ("cancelled", 1)
    with app.app_context():
        sent, _ = outbox.read(providers.outbox_path(app), announcement_id=announcement_id,
                              limit=1000)
    told = {BLIND_PHONE, "+8613800000012"}  # 张伟's and 李娜's
    assert sent and not told & {record["address"] for record in sent}
    with app.extensions["engine"].connect() as conn:
        named = dict(conn.execute(select(residents.c.name, residents.c.id)).all())
        visited = set(conn.execute(select(deliveries.c.recipient_id).where(
            deliveries.c.announcement_id == announcement_id,
            deliveries.c.channel == "in_person", deliveries.c.status == "confirmed")).scalars())
    assert visited == {named["张伟"], named["李娜"]}
