"""The console on a phone, by keyboard and for everyone (#17, items 3, 6, 7, 8), in headless
Chromium: no page wider than a 390 px screen, compose/approve/cancel without a mouse, axe-core
finding nothing serious or critical on any page, in Chinese and English; drafts that outlive a
timed-out session; the compose page's counters.

A notice released and planned in this process (``run_jobs``: the outbox stands in for every
provider) gives the progress and unreached pages something to show.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.conftest import run_jobs
from tests.gateway.conftest import DISTRICT, VILLAGE_A
from tests.gateway.test_console_browser import (CHROMIUM, CHROMIUM_ARGS, WAIT_MS, live_server,
                                                log_in)

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
__all__ = ["live_server"]  # the fixture, imported for these tests

# Every element's right edge within the viewport, unless a scrolling box of its own (a wide
# table that scrolls inside the page) holds it; and the page itself never scrolls sideways.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const clipped = (element) => {
    for (let box = element.parentElement; box; box = box.parentElement) {
      const overflow = getComputedStyle(box).overflowX;
      if (overflow === "auto" || overflow === "scroll" || overflow === "hidden") return true;
    }
    return false;
  };
  const wide = [...document.body.querySelectorAll("*")].filter((element) => {
    const box = element.getBoundingClientRect();
    return box.width > 0 && (box.right > width + 1 || box.left < -1) && !clipped(element);
  }).map((element) => `${element.tagName.toLowerCase()}#${element.id}.${element.className}: `
                      + `${Math.round(element.getBoundingClientRect().right)}`);
  return {scroll: document.documentElement.scrollWidth, width, wide};
}"""

# Table headers whose text is laid out one character per line (the Chinese headers once were).
# (Lines counted from the text's own line boxes: a cell is as tall as its row's tallest.)
STACKED_HEADERS = """() => [...document.querySelectorAll("th")].filter((th) => {
  const text = th.textContent.trim();
  const range = document.createRange();
  range.selectNodeContents(th);
  const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
  return text.length >= 2 && lines >= text.length;
}).map((th) => th.textContent.trim())"""


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        yield chromium
        chromium.close()


def new_page(browser, viewport=None, **options):
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 1000}, **options)
    context.set_default_timeout(WAIT_MS)
    return context.new_page()


@pytest.fixture
def sent_notice(app):
    """A severe notice, released and planned and sent to the outbox: progress and unreached
    pages with rows."""
    from tests.gateway.console.conftest import login, logout, submit, approve
    client = app.test_client()
    login(client, "author")
    announcement_id = submit(client, severity="severe")
    logout(client)
    login(client, "approver")
    assert approve(client, announcement_id).status_code == 302
    run_jobs(app)
    return announcement_id


GRID = VILLAGE_A + "001"


@pytest.fixture
def newer_pages(app, county):
    """What the pages added after the first checks show: a grid worked by ``gridworker`` (with
    a resident in it), a registration waiting for review, a broadcast destination."""
    from gateway.store import accounts, destinations, grids, registrations
    from gateway.store.schema import residents
    with app.extensions["engine"].begin() as conn:
        grids.add_grid(conn, GRID, "一组", "test")
        accounts.create_user(conn, "gridworker", "grid_worker", "gridworker-password")
        grids.assign(conn, GRID, "gridworker", "test")
        conn.execute(update(residents).where(residents.c.area_code == VILLAGE_A)
                     .values(grid=GRID))
        registrations.submit(conn, registrations.Registration(
            area_code=VILLAGE_A, name="周扫码", phone="+8613900000031", language="zh",
            uses_wechat=False, needs=("visually_impaired",),
            consents=("contact", "visually_impaired")))
        destinations.add(conn, name="市应急广播", kind=destinations.KINDS[0],
                         area_code=DISTRICT, url="https://broadcast.example.cn/cap")


def choose_language(page, language):
    if language == "en":
        page.click("header button[name=language][value=en]")
        page.wait_for_load_state()


def console_pages(announcement_id):
    """Every page of the console an admin opens, and the public pages (the notice's, and a
    village's self-registration form and the way in to see one's own record)."""
    return ["/", "/announcements/new", f"/announcements/{announcement_id}",
            f"/announcements/{announcement_id}/approve", f"/announcements/{announcement_id}/unreached",
            f"/announcements/{announcement_id}/disclosure", f"/announcements/{announcement_id}/grids",
            "/residents", "/residents/import", "/devices", "/grids", "/registrations",
            f"/registrations/poster/{VILLAGE_A}", "/destinations", "/outbox", "/audit",
            f"/a/{announcement_id}", f"/join/{VILLAGE_A}", f"/join/{VILLAGE_A}/manage"]


def layout_problems(page) -> dict:
    """Elements wider than the screen, the page scrolling sideways, headers one character per
    line; empty when the page fits."""
    layout = page.evaluate(OVERFLOW)
    stacked = page.evaluate(STACKED_HEADERS)
    if layout["scroll"] > layout["width"] or layout["wide"] or stacked:
        return {**layout, "stacked_headers": stacked}
    return {}


def serious_violations(page) -> list:
    """axe-core's serious and critical findings on the page as it is now (a page opened with
    ``bypass_csp``: the console's Content-Security-Policy refuses injected scripts)."""
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => {
      const result = await axe.run(document, {resultTypes: ["violations"]});
      return result.violations.filter((v) => ["serious", "critical"].includes(v.impact))
        .map((v) => ({id: v.id, help: v.help,
                      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" "))}));
    }""")


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_page_fits_a_390_px_phone(app, browser, live_server, sent_notice, newer_pages,
                                        language):
    """Progress, compose and unreached above all: no element wider than the screen, no
    sideways scroll of the page, no table header written one character per line."""
    page = new_page(browser, PHONE)
    log_in(page, live_server, "admin")
    choose_language(page, language)
    problems = {}
    for path in console_pages(sent_notice):
        page.goto(live_server + path)
        if path == f"/announcements/{sent_notice}":
            page.wait_for_selector("#progress-rows tr")
        if found := layout_problems(page):
            problems[path] = found
    assert not problems, json.dumps(problems, ensure_ascii=False, indent=1)


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm ci, see Makefile)")
@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_axe_finds_nothing_serious_on_any_page(app, browser, live_server, sent_notice, newer_pages,
                                               language, viewport):
    page = new_page(browser, viewport, bypass_csp=True)
    log_in(page, live_server, "admin")
    choose_language(page, language)
    found = {}
    for path in console_pages(sent_notice) + ["/login"]:
        if path == "/login":
            page.click("header form[action='/logout'] button")
        page.goto(live_server + path)
        if path == f"/announcements/{sent_notice}":
            page.wait_for_selector("#progress-rows tr")  # the page as it is once filled in
        if violations := serious_violations(page):
            found[path] = violations
    assert not found, json.dumps(found, ensure_ascii=False, indent=1)


def grid_and_join_pages(app, page, server, language):
    """Go to each page only a grid worker or a registering resident reaches, yielding its name
    there: the grid worker's phone page, then a village's join form sent, its code page, its
    thank-you page and the page of one's own record (codes from the SMS outbox, as the
    resident reads them)."""
    from gateway.delivery import queues
    from tests.gateway.test_join_browser import sms_code
    phone = "+8613900000032"
    page.goto(f"{server}/login")
    page.fill("input[name=name]", "gridworker")
    page.fill("input[name=password]", "gridworker-password")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server}/grid")
    choose_language(page, language)
    page.wait_for_selector(".person button[data-outcome=told]")  # someone left, with the buttons
    yield "/grid"
    page.click("header form[action='/logout'] button")
    page.goto(f"{server}/join/{VILLAGE_A}")  # in the language chosen: logging out keeps it
    page.fill("input[name=name]", "周扫码")
    page.fill("input[name=phone]", phone)
    page.check("input[name=consent_contact]")
    page.click("main button[type=submit]")
    page.wait_for_url("**/verify")
    yield "/join/…/verify"
    page.fill("input[name=code]", sms_code(app, phone))
    page.click("main button[type=submit]")
    page.wait_for_selector("#registered")
    yield "/join/… registered"
    with app.app_context():  # as if the minute between two codes to one number had passed
        queues.connection().delete(f"tongbao:join:gap:{phone}")
    page.goto(f"{server}/join/{VILLAGE_A}/manage")
    page.fill("input[name=phone]", phone)
    page.click("main button[type=submit]")
    page.wait_for_url("**/verify")
    page.fill("input[name=code]", sms_code(app, phone))
    page.click("main button[type=submit]")
    page.wait_for_url("**/mine")
    yield "/join/…/mine"


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm ci, see Makefile)")
@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_grid_worker_and_join_pages_fit_and_axe_finds_nothing_serious(
        app, browser, live_server, sent_notice, newer_pages, language, viewport):
    """The pages behind another login or a sent form: the same checks as every other page."""
    page = new_page(browser, viewport, bypass_csp=True)
    found = {}
    for name in grid_and_join_pages(app, page, live_server, language):
        problems = {"layout": layout_problems(page) if viewport else {},
                    "axe": serious_violations(page)}
        if any(problems.values()):
            found[name] = problems
    assert not found, json.dumps(found, ensure_ascii=False, indent=1)


def test_compose_approve_and_cancel_by_keyboard_alone(app, browser, live_server):
    """Every step with Tab, Space and Enter: no mouse click anywhere."""
    expect = playwright_api.expect
    page = new_page(browser)
    log_in(page, live_server, "author")
    page.goto(f"{live_server}/announcements/new")
    keyboard = page.keyboard

    def tab_to(selector):
        for _ in range(200):
            keyboard.press("Tab")
            if page.evaluate("(s) => document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reaches {selector}")

    tab_to("input[name=headline]")
    keyboard.type("暴雨黄色预警")
    tab_to("textarea[name=body]")
    keyboard.type("今晚有大雨。")
    tab_to(f"input[name=areas][value='{DISTRICT}']")
    keyboard.press("Space")
    tab_to("button[name=preview]")
    keyboard.press("Enter")
    expect(page.locator("#preview-summary")).to_be_visible()
    tab_to("button[name=submit]")
    keyboard.press("Enter")
    expect(page.locator("#state")).to_have_text("等待审批")
    page.wait_for_load_state()
    announcement_url = page.url
    page.click("header form[action='/logout'] button")

    log_in(page, live_server, "approver")
    page.goto(announcement_url)
    tab_to("#approve-link")
    keyboard.press("Enter")
    expect(page.locator("#confirm-approve")).to_be_visible()
    page.wait_for_load_state()
    tab_to("#confirm-approve")
    keyboard.press("Enter")
    expect(page.locator(".flash-success")).to_be_visible()
    page.wait_for_load_state()
    tab_to("#cancel-button")
    keyboard.press("Enter")
    expect(page.locator("#confirm-cancel")).to_be_visible()
    page.wait_for_load_state()
    tab_to("#confirm-cancel")
    keyboard.press("Enter")
    expect(page.locator(".flash-success")).to_contain_text("已撤销")


def test_a_draft_survives_a_timed_out_session(app, browser, live_server):
    """Typed, then the session times out: the submit leads to the login page (never "form
    expired"), and after logging in the compose page has the text back; once submitted, the
    draft is forgotten."""
    expect = playwright_api.expect
    page = new_page(browser)
    log_in(page, live_server, "author")
    page.goto(f"{live_server}/announcements/new")
    page.fill("input[name=headline]", "台风橙色预警")
    page.fill("textarea[name=body]", "台风今夜登陆，请勿外出。")
    page.check(f"input[name=areas][value='{DISTRICT}']")
    expect(page.locator("#count-body")).to_have_text("12 / 4000 字")
    page.click("button[name=preview]")
    expect(page.locator("#preview-severity")).to_contain_text("较重/黄色·III级")

    app.config["SESSION_MINUTES"] = 1 / 60  # the session ends a second after the last request
    page.wait_for_timeout(1500)
    page.click("button[name=submit]")
    page.wait_for_load_state()
    assert "/login?next=" in page.url, (page.url, page.content()[:3000])
    expect(page.locator(".flash-warning")).to_contain_text("登录已超时")
    assert "表单已过期" not in page.content()
    app.config["SESSION_MINUTES"] = 30
    page.fill("input[name=name]", "author")
    page.fill("input[name=password]", "author-password")
    page.click("main button[type=submit]")
    page.wait_for_url("**/announcements/new*")
    expect(page.locator("#draft-restored")).to_be_visible()
    expect(page.locator("input[name=headline]")).to_have_value("台风橙色预警")
    expect(page.locator("textarea[name=body]")).to_have_value("台风今夜登陆，请勿外出。")
    expect(page.locator(f"input[name=areas][value='{DISTRICT}']")).to_be_checked()

    page.click("button[name=preview]")
    page.click("button[name=submit]")
    expect(page.locator("#state")).to_have_text("等待审批")
    page.goto(f"{live_server}/announcements/new")
    expect(page.locator("input[name=headline]")).to_have_value("")
    expect(page.locator("#draft-restored")).to_be_hidden()


def test_the_session_warns_before_it_ends_and_can_be_kept(app, browser, live_server):
    expect = playwright_api.expect
    """A session of 15 s warns in its last third (5 s); "stay signed in" renews it on the
    server, for the whole session time again."""
    app.config["SESSION_MINUTES"] = 0.25
    page = new_page(browser)
    log_in(page, live_server, "author")
    warning = page.locator("#session-warning")
    expect(warning).to_be_hidden()
    page.wait_for_timeout(10_500)
    page.evaluate("showSessionState()")  # the page looks every 15 s; here at once
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("1 分钟后失效")
    app.config["SESSION_MINUTES"] = 30  # what the server answers "stay signed in" with
    page.click("#stay-signed-in")
    expect(warning).to_be_hidden()
    page.wait_for_timeout(6000)  # past the first session's end: the renewed one still holds
    page.goto(f"{live_server}/announcements/new")
    expect(page.locator("input[name=headline]")).to_be_visible()


def test_the_compose_counter_and_language_warning(app, browser, live_server):
    expect = playwright_api.expect
    page = new_page(browser)
    log_in(page, live_server, "author")
    page.goto(f"{live_server}/announcements/new")
    page.fill("textarea[name=body]", "长" * 4005)
    expect(page.locator("#count-body")).to_have_text("4005 / 4000 字")
    expect(page.locator("#count-body")).to_have_class("counter over")
    assert len(page.input_value("textarea[name=body]")) == 4005  # nothing cut
    page.fill("input[name=headline]", "Typhoon warning for the coast")
    page.fill("textarea[name=body]", "Stay indoors tonight.")
    expect(page.locator("#language-warning")).to_be_visible()
    expect(page.locator("#language-warning")).to_contain_text("看起来不是中文")
    page.select_option("select[name=language]", "en")
    expect(page.locator("#language-warning")).to_be_hidden()


SCREENSHOTS = "CONSOLE_SCREENSHOTS"  # a folder: the screenshots of docs/console.md go there


def test_the_pages_of_docs_console_md_render_in_chinese(app, browser, live_server, tmp_path):
    """Compose, preview, progress and unreached, in Chinese, as docs/console.md shows them;
    with CONSOLE_SCREENSHOTS=docs/images the screenshots are written there."""
    import os
    expect = playwright_api.expect
    folder = Path(os.environ.get(SCREENSHOTS) or tmp_path)
    page = new_page(browser, {"width": 1100, "height": 900})
    log_in(page, live_server, "author")
    page.goto(f"{live_server}/announcements/new")
    page.fill("input[name=headline]", "暴雨橙色预警")
    page.fill("textarea[name=body]", "预计今夜到明天，钦南区有特大暴雨，局地雨量可达150毫米。")
    page.fill("textarea[name=instruction]", "请远离河道和低洼地带，危险时拨打110。")
    page.select_option("select[name=severity]", "severe")
    page.check(f"input[name=areas][value='{DISTRICT}']")
    expect(page.locator("#render-sms")).to_contain_text("暴雨橙色预警")
    page.screenshot(path=str(folder / "console-compose.png"), full_page=True)
    page.click("button[name=preview]")
    expect(page.locator("#preview-severity")).to_contain_text("严重/橙色·II级")
    page.screenshot(path=str(folder / "console-preview.png"), full_page=True)
    page.click("button[name=submit]")
    announcement_url = page.url
    page.click("header form[action='/logout'] button")
    log_in(page, live_server, "approver")
    page.goto(announcement_url)
    page.click("#approve-link")
    page.click("#confirm-approve")
    run_jobs(app)
    page.goto(announcement_url)
    expect(page.locator("#state")).to_have_text("已完成")
    page.screenshot(path=str(folder / "console-progress.png"), full_page=True)
    page.goto(f"{announcement_url}/unreached")
    expect(page.locator("h1")).to_contain_text("未送达")
    page.screenshot(path=str(folder / "console-unreached.png"), full_page=True)
    phone = new_page(browser, PHONE)
    log_in(phone, live_server, "approver")
    phone.goto(announcement_url)
    expect(phone.locator("#state")).to_have_text("已完成")
    phone.screenshot(path=str(folder / "console-progress-phone.png"), full_page=True)
    assert all((folder / f"console-{name}.png").stat().st_size > 10_000
               for name in ("compose", "preview", "progress", "unreached", "progress-phone"))
