"""The console in real headless Chromium: two people publish, watch it go out, and correct it.

The app is served by a real HTTP server in a thread; an rq worker runs as its own process,
as in production. One browser, one page, SQLite.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.gateway.conftest import DISTRICT, RESIDENTS

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOT = Path("/tmp/tongbao-console-watch.png")
ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 60_000
DISTRICT_RESIDENTS = len(RESIDENTS) - 1  # everyone but the resident of the other district


@pytest.fixture
def live_server(app, county):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def worker(app):
    """``flask worker`` on the same database, Redis and instance folder as the app."""
    environment = {**os.environ, "DATABASE_URL": app.config["DATABASE_URL"],
                   "REDIS_URL": app.config["REDIS_URL"], "TONGBAO_INSTANCE": app.instance_path,
                   "RETRY_DELAY_SECONDS": "0", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
                               cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    yield process
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def page(tmp_path):
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        context.set_default_timeout(WAIT_MS)
        yield context.new_page()
        context.close()
        browser.close()


def log_in(page, server, name):
    page.goto(f"{server}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", f"{name}-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/")


def log_out(page):
    page.click("header form[action='/logout'] button")
    page.wait_for_url("**/login")


def channel_cell(page, channel, column):
    return page.locator(f"#progress-rows tr[data-channel={channel}] td.{column}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_people_publish_watch_and_correct(page, live_server, worker):
    expect = playwright_api.expect
    server = live_server

    log_in(page, server, "author")
    expect(page.locator("h1")).to_have_text("通知")
    page.click("text=撰写通知")
    page.fill("input[name=headline]", "暴雨红色预警")
    page.fill("textarea[name=body]", "预计未来3小时有特大暴雨。")
    page.fill("textarea[name=instruction]", "请转移到安全地带。")
    page.check(f"input[name=areas][value='{DISTRICT}']")
    # Rendered as it will go out, while typing: the SMS text and its segment count.
    expect(page.locator("#render-sms")).to_contain_text("【钦州发布】暴雨红色预警")
    expect(page.locator("#sms-meta")).to_contain_text("条计费")
    expect(page.locator("#audience-size")).to_have_text(f"已选 {DISTRICT_RESIDENTS} 位居民")
    # The speech script, synthesized on request and played in the page's own player.
    page.click("#listen")
    expect(page.locator("#draft-audio")).to_be_visible()
    expect(page.locator("#draft-audio")).to_have_attribute("src", re.compile(r"^/media/a0-zh-"))
    expect(page.locator("#listen-status")).to_contain_text("语音时长")

    page.click("button[name=preview]")
    expect(page.locator("#preview-summary")).to_contain_text(f"{DISTRICT_RESIDENTS} 位居民")
    page.click("button[name=submit]")
    expect(page.locator("#state")).to_have_text("等待审批")
    announcement_url = page.url
    log_out(page)

    log_in(page, server, "approver")
    page.goto(announcement_url)
    page.click("#approve-link")
    expect(page.locator("#confirm-words")).to_contain_text("真实预警")
    expect(page.locator("#confirm-words")).to_contain_text(f"{DISTRICT_RESIDENTS}（七）")
    page.click("#confirm-approve")
    page.wait_for_url(announcement_url)

    # The counts reach their final values by polling, without reloading the page.
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#watch-finished")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#state")).to_have_text("已完成")
    expect(page.locator("#reached")).to_have_text(str(DISTRICT_RESIDENTS))
    sms_residents = sum(1 for name, (_, channels) in RESIDENTS.items()
                        if "sms" in channels and name != "other district")
    expect(channel_cell(page, "sms", "planned")).to_have_text(str(sms_residents))
    expect(channel_cell(page, "sms", "delivered")).to_have_text(str(sms_residents))
    # The stand-in loudspeakers say "received", not "played": shown as such, with when.
    expect(page.locator("#speaker-rows td.received")).to_have_text(["1/1", "1/1"])
    expect(page.locator("#speaker-rows td.not-played")).to_have_count(2)
    expect(page.locator("#chart polyline.series-sms")).to_have_count(1)
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    expect(page.locator("#withdrawal-text")).to_contain_text("此前发布的通知已撤销：“暴雨红色预警”")
    expect(page.locator("textarea[name=correction]")).to_have_value("")
    # The cancel sits below the progress and asks first, naming what will happen.
    assert page.evaluate("document.getElementById('watch').getBoundingClientRect().top < "
                         "document.getElementById('correction-form').getBoundingClientRect().top")
    page.click("text=撤销并发送撤销通知")
    expect(page.locator("#cancel-words")).to_contain_text(
        f"已收到的 {DISTRICT_RESIDENTS}（七） 位居民")
    expect(page.locator("#state")).to_have_count(0)  # nothing cancelled yet: a page of its own
    page.click("#confirm-cancel")
    expect(page.locator(".flash-success")).to_contain_text("已撤销")
    expect(page.locator("#watch-finished")).to_be_visible(timeout=WAIT_MS)
    correction_url = page.url
    page.goto(announcement_url.replace("/announcements/", "/a/"))
    expect(page.locator(".withdrawn")).to_contain_text("此通知已撤销")
    page.click("text=查看更正")
    expect(page.locator("h1")).to_have_text("暴雨红色预警")
    assert page.url.rsplit("/", 1)[1] == correction_url.rsplit("/", 1)[1]

    page.goto(correction_url)
    page.click("header button[name=language]")
    expect(page.locator("header")).to_contain_text("Log out")
    expect(page.locator("#watch h2")).to_contain_text("Progress")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_pending_notice_is_not_shown_finished_and_cancel_asks_first(app, page, live_server):
    """No worker runs: the notice stays approved, not yet planned. The "finished" badge stays
    hidden (the badge's style once overrode ``hidden``), the chart has its key, and cancel
    asks first."""
    from tests.gateway.console.conftest import released
    expect = playwright_api.expect
    announcement_id = released(app.test_client())
    log_in(page, live_server, "approver")
    page.goto(f"{live_server}/announcements/{announcement_id}")
    expect(page.locator("#chart-key li").first).to_contain_text("已送达居民 0")
    expect(page.locator("#chart-key li").nth(1)).to_contain_text("已确认居民 0")
    expect(page.locator("#state")).to_have_text("已批准")
    expect(page.locator("#watch-finished")).to_be_hidden()
    page.click("#cancel-button")
    expect(page.locator("#cancel-words")).to_contain_text("“暴雨红色预警”（较重/黄色·III级，钦南区）将撤销")
    page.click("text=返回")
    expect(page.locator("#state")).to_have_text("已批准")
