"""An announcement's page (/announcements/<id>): approve and reject under the two-person rule,
progress while it is sent, drills told apart from real alerts, and the one-button correction."""
from __future__ import annotations

import re
from datetime import timedelta, timezone

import pytest
import redis
from sqlalchemy import func, select

from gateway.delivery import jobs
from gateway.store import ledger
from gateway.store.schema import announcements, deliveries, users
from gateway.web.console import queries
from tests.conftest import run_jobs
from tests.gateway.conftest import RESIDENTS, TOWN, VILLAGE_A
from tests.gateway.console.conftest import (CSRF_FIELD, announcement_count, approve, csrf_token,
                                            login, logout, page, released, state_of, submit)

pytestmark = pytest.mark.integration
#: A worker holding claimed rows for a minute.
HOLDER = {"owner": "worker-1", "lease": timedelta(minutes=1)}


def test_an_unknown_announcement_is_a_404_page(client):
    login(client, "approver")
    for path in ("/announcements/9999", "/announcements/9999/progress.json",
                 "/announcements/9999/unreached", "/announcements/9999/unreached.csv"):
        response = client.get(path)
        assert response.status_code == 404 and "没有这条通知" in page(response)

def test_the_author_of_a_real_alert_cannot_approve_it(app, client, county):
    with app.extensions["engine"].begin() as conn:
        conn.execute(users.update().where(users.c.name == "approver").values(role="approver"))
    login(client, "approver")
    announcement_id = submit(client)
    html = page(client.get(f"/announcements/{announcement_id}"))
    assert 'id="approve-link"' not in html and 'id="two-person-note"' in html
    refused = approve(client, announcement_id)
    assert "双人规则" in page(client.get(refused.location))
    assert state_of(app, announcement_id) == "awaiting_approval"


def test_an_author_sees_no_approve_button(client):
    login(client, "author")
    announcement_id = submit(client)
    assert 'id="approve-link"' not in page(client.get(f"/announcements/{announcement_id}"))


def test_the_confirm_step_names_the_status_and_audience_in_words(client):
    login(client, "author")
    actual = submit(client)
    drill = submit(client, status="exercise")
    logout(client)
    login(client, "approver")
    actual_page = page(client.get(f"/announcements/{actual}/approve"))
    assert "真实预警" in actual_page and "7（七）" in actual_page
    drill_page = page(client.get(f"/announcements/{drill}/approve"))
    assert "演练" in drill_page and "1（一）" in drill_page and "真实预警，而不是演练" not in drill_page


def test_approve_without_confirmed_only_shows_the_confirm_step_in_words(app, client):
    login(client, "author")
    announcement_id = submit(client, severity="extreme", areas=[TOWN])
    logout(client)
    login(client, "approver")
    token = csrf_token(client, f"/announcements/{announcement_id}/approve")
    response = client.post(f"/announcements/{announcement_id}/approve",
                           data={"csrf_token": token})
    html = page(response)
    assert response.status_code == 200 and state_of(app, announcement_id) == "awaiting_approval"
    what = re.search(r'<p class="confirm-what" id="confirm-what">([^<]+)</p>', html).group(1)
    # The notice, its severity in China's convention, its areas by name, residents per channel.
    assert what.startswith("“暴雨红色预警”（特别严重/红色·I级）将发送给 沙埠镇 的 ")
    assert "短信 " in what and "语音电话 " in what
    assert 'name="confirmed" value="1"' in html
    assert "真实预警：所选地区的每位居民都会收到。" in html  # the banner carries words
    assert approve(client, announcement_id).status_code == 302
    assert state_of(app, announcement_id) == "approved"


def test_the_confirm_step_counts_per_channel_as_the_preview_does(app, client):
    from gateway.delivery import preview
    login(client, "author")
    announcement_id = submit(client)
    logout(client)
    login(client, "approver")
    html = page(client.get(f"/announcements/{announcement_id}/approve"))
    with app.test_request_context(), app.extensions["engine"].connect() as conn:
        from gateway.delivery import lifecycle
        counts = preview.preview(conn, lifecycle.get(conn, announcement_id))["deliveries"]
    what = re.search(r'id="confirm-what">([^<]+)</p>', html).group(1)
    labels = {"sms": "短信", "voice": "语音电话", "wechat": "微信", "loudspeaker": "村广播"}
    for channel, count in counts.items():
        assert f"{labels[channel]} {count}" in what


def test_approving_sends_and_the_progress_reaches_its_final_counts(app, client):
    login(client, "author")
    announcement_id = submit(client)
    logout(client)
    login(client, "approver")
    assert approve(client, announcement_id).status_code == 302
    run_jobs(app)
    progress = client.get(f"/announcements/{announcement_id}/progress.json").json
    assert progress["finished"] and progress["state"] == "done"
    assert progress["reached_residents"] == len(RESIDENTS) - 1
    assert {(village["area_code"], village["name"]) for village in progress["loudspeakers"]} == \
        {(VILLAGE_A, "沙埠村"), ("450702100202", "新屋村")}
    assert all(village["received"] == village["speakers"] for village in progress["loudspeakers"])
    failed = {(f["channel"], f["address"]) for f in progress["failures"]}
    assert progress["failures_total"] == len(failed) == \
        sum(by_status["failed"] for by_status in progress["deliveries"].values())


def test_while_redis_does_not_answer_the_progress_shows_the_ledgers_figures_and_says_so(
        app, client, api):
    """The office looks at the progress exactly when something is wrong: a Redis restart must
    not turn the page, progress.json or the status API into errors."""
    announcement_id = released(client)
    run_jobs(app)
    before = api("author").get(f"/api/v1/announcements/{announcement_id}").json
    assert before["queue_reachable"] is True
    assert '<p id="queue-down" class="paused" hidden>' in page(
        client.get(f"/announcements/{announcement_id}"))
    app.extensions["redis"] = redis.Redis.from_url("redis://127.0.0.1:1/0")  # refused
    status = api("author").get(f"/api/v1/announcements/{announcement_id}")
    assert status.status_code == 200
    assert {**status.json, "queue_reachable": True} == before
    progress = client.get(f"/announcements/{announcement_id}/progress.json")
    assert progress.status_code == 200 and progress.json["queue_reachable"] is False
    assert progress.json["reached_residents"] == before["reached_residents"]
    html = page(client.get(f"/announcements/{announcement_id}"))
    assert '<p id="queue-down" class="paused">任务队列（Redis）没有响应：恢复之前不会发出任何消息。' in html


def test_progress_history_comes_from_the_ledger_so_a_late_page_draws_the_real_curve(app, client):
    announcement_id = released(client)
    html = page(client.get(f"/announcements/{announcement_id}"))
    # While messages are pending the "finished" badge is in the page but hidden, and the
    # stylesheet lets hidden win over the badge's display.
    assert re.search(r'<span id="watch-finished" class="badge" hidden>', html)
    css = client.get("/static/console.css").get_data(as_text=True)
    assert re.search(r"\[hidden\]\s*\{\s*display:\s*none !important", css)
    before = client.get(f"/announcements/{announcement_id}/progress.json").json
    assert not before["finished"] and before["history"]["reached"][-1] == 0
    run_jobs(app)
    history = client.get(f"/announcements/{announcement_id}/progress.json").json["history"]
    assert len(history["seconds"]) == len(history["reached"]) == 40
    assert history["seconds"][0] == 0 and history["seconds"] == sorted(history["seconds"])
    assert history["reached"] == sorted(history["reached"])  # counts up to each moment
    assert history["reached"][-1] == len(RESIDENTS) - 1
    with app.extensions["engine"].connect() as conn:
        delivered = dict(conn.execute(
            select(deliveries.c.channel, func.count()).where(
                deliveries.c.announcement_id == announcement_id,
                deliveries.c.status.in_(ledger.REACHED)).group_by(deliveries.c.channel)).all())
    assert {c: series[-1] for c, series in history["delivered"].items()} == delivered


def test_loudspeakers_show_received_played_and_when(app, client):
    announcement_id = released(client)
    run_jobs(app)
    villages = client.get(f"/announcements/{announcement_id}/progress.json").json["loudspeakers"]
    # The stand-in devices said "received": none has played yet, and that is what is shown.
    assert villages and all(v["received"] == v["speakers"] and v["played"] == 0 and
                            v["answered_at"] for v in villages)
    with app.extensions["engine"].begin() as conn:  # one device says "played"
        first = conn.execute(select(func.min(deliveries.c.id)).where(
            deliveries.c.announcement_id == announcement_id,
            deliveries.c.channel == "loudspeaker")).scalar_one()
        conn.execute(deliveries.update().where(deliveries.c.id == first)
                     .values(status="confirmed"))
    villages = client.get(f"/announcements/{announcement_id}/progress.json").json["loudspeakers"]
    assert sorted(v["played"] for v in villages) == [0] * (len(villages) - 1) + [1]
    assert all(v["received"] == v["speakers"] for v in villages)


def test_the_loudspeaker_table_is_sent_again_only_when_it_changed(app, client):
    announcement_id = released(client)
    run_jobs(app)
    url = f"/announcements/{announcement_id}/progress.json"
    first = client.get(url).json
    held = first["loudspeakers_version"]
    assert first["loudspeakers"]
    unchanged = client.get(url, query_string={"loudspeakers_version": held}).json
    assert "loudspeakers" not in unchanged and unchanged["loudspeakers_version"] == held
    assert unchanged["reached_residents"] == first["reached_residents"]  # the rest as always
    with app.extensions["engine"].begin() as conn:  # one device says "played"
        played, other = conn.execute(select(deliveries.c.id).where(
            deliveries.c.announcement_id == announcement_id,
            deliveries.c.channel == "loudspeaker").order_by(deliveries.c.id)).scalars().all()
        assert ledger.transition(conn, played, "confirmed")
    changed = client.get(url, query_string={"loudspeakers_version": held}).json
    assert changed["loudspeakers_version"] != held
    assert sorted(v["played"] for v in changed["loudspeakers"]) == [0, 1]
    held = changed["loudspeakers_version"]
    with app.extensions["engine"].begin() as conn:  # no "played" from the other: sent again
        assert ledger.reschedule(conn, announcement_id, "loudspeaker", [other], "no ack",
                                 from_status="delivered") == 1
    again = client.get(url, query_string={"loudspeakers_version": held}).json
    assert again["loudspeakers_version"] != held
    assert sorted(v["received"] for v in again["loudspeakers"]) == [0, 1]


def test_the_progress_lists_failures_with_their_reason(app, client):
    announcement_id = released(client)
    with app.app_context():
        jobs.plan_announcement(announcement_id)  # deliveries written and queued, none sent
    with app.extensions["engine"].begin() as conn:
        first = conn.execute(select(deliveries.c.id).where(
            deliveries.c.announcement_id == announcement_id,
            deliveries.c.channel == "sms").order_by(deliveries.c.id).limit(1)).scalar_one()
        [claimed] = ledger.claim(conn, announcement_id, "sms", **HOLDER, ids=[first])
        ledger.settle(conn, announcement_id, "sms", "failed",
                      [(first, None, "[21211] not a valid phone number")])
    progress = client.get(f"/announcements/{announcement_id}/progress.json").json
    assert progress["failures_total"] == 1
    assert progress["failures"] == [{"channel": "sms", "address": claimed.address, "attempts": 1,
                                     "error": "[21211] not a valid phone number",
                                     "at": progress["failures"][0]["at"]}]
    # Authors see the failure, not the resident's phone; nor the links to the phone lists.
    logout(client)
    login(client, "author")
    failure = client.get(f"/announcements/{announcement_id}/progress.json").json["failures"][0]
    assert failure["address"] == "" and failure["error"] == "[21211] not a valid phone number"
    html = page(client.get(f"/announcements/{announcement_id}"))
    assert f"/announcements/{announcement_id}/unreached" not in html and "/outbox" not in html
    assert "仅供审批人和管理员查看" in html


def test_the_failure_list_reads_the_index_of_failed_rows_not_the_ledger(app):
    engine = app.extensions["engine"]
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan is the one that depends on how the query is written")
    statement = queries.failed_rows(7, 100).compile(engine)  # bound as the app runs it
    parameters = tuple(statement.params[name] for name in statement.positiontup)
    with engine.connect() as conn:
        plan = " ".join(row[-1] for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters))
    assert re.search(r"USING INDEX ix_deliveries_failed\b", plan), plan


def test_rejecting_needs_a_reason(app, client):
    login(client, "author")
    announcement_id = submit(client)
    logout(client)
    login(client, "approver")
    token = csrf_token(client, f"/announcements/{announcement_id}")
    empty = client.post(f"/announcements/{announcement_id}/reject",
                        data={"csrf_token": token, "reason": " "})
    assert "请说明驳回理由" in page(client.get(empty.location))
    assert state_of(app, announcement_id) == "awaiting_approval"
    client.post(f"/announcements/{announcement_id}/reject",
                data={"csrf_token": token, "reason": "数字有误"})
    assert state_of(app, announcement_id) == "rejected"
    assert "数字有误" in page(client.get(f"/announcements/{announcement_id}"))


def test_drills_and_real_alerts_look_different_everywhere(client):
    login(client, "author")
    actual = submit(client)
    drill = submit(client, status="exercise")
    index = page(client.get("/"))
    assert re.search(rf'<tr class="kind-actual[^"]*">\s*<td>{actual}</td>', index)
    assert re.search(rf'<tr class="kind-drill[^"]*">\s*<td>{drill}</td>', index)
    actual_page = page(client.get(f"/announcements/{actual}"))
    drill_page = page(client.get(f"/announcements/{drill}"))
    assert 'class="kind-actual-page"' in actual_page and "真实预警" in actual_page
    assert 'class="kind-drill-page"' in drill_page and "演练 – 非真实预警" in drill_page
    assert "演练 – 非真实预警" not in actual_page


# --- correct -------------------------------------------------------------------------------

def test_one_button_cancels_and_sends_the_fixed_withdrawal_notice(app, client):
    announcement_id = released(client)
    run_jobs(app)
    html = page(client.get(f"/announcements/{announcement_id}"))
    fixed = re.search(r'<blockquote id="withdrawal-text">([^<]+)</blockquote>', html).group(1)
    assert fixed.startswith("此前发布的通知已撤销：“暴雨红色预警”（")
    assert re.search(r'<textarea name="correction"[^>]*></textarea>', html)  # empty, optional
    token = CSRF_FIELD.search(html).group(1)
    response = client.post(f"/announcements/{announcement_id}/cancel",
                           data={"csrf_token": token, "confirmed": "1", "correction": ""})
    correction_id = int(response.location.rsplit("/", 1)[1])
    run_jobs(app)
    assert state_of(app, announcement_id) == "cancelled"
    assert state_of(app, correction_id) == "done"
    with app.extensions["engine"].connect() as conn:
        withdrawal = conn.execute(select(announcements)
                                  .where(announcements.c.id == correction_id)).one()
    assert (withdrawal.body, withdrawal.approver_id) == (fixed, None)
    public = page(client.get(f"/a/{announcement_id}"))
    assert "此通知已撤销" in public and f"/a/{correction_id}" in public
    # A withdrawal notice cannot be withdrawn in turn: its page offers no cancel.
    assert 'id="correction-form"' not in page(client.get(f"/announcements/{correction_id}"))


def test_the_withdrawal_notice_tells_the_time_in_the_offices_time_zone(app, client):
    """OFFICE_TIMEZONE reaches the fixed wording: the one shown before cancelling and the one
    sent (Urumqi, UTC+6, is two hours behind Beijing)."""
    from zoneinfo import ZoneInfo
    app.config["OFFICE_TIMEZONE"] = "Asia/Urumqi"
    announcement_id = released(client)
    with app.extensions["engine"].connect() as conn:
        sent = conn.execute(select(announcements.c.sent)
                            .where(announcements.c.id == announcement_id)).scalar_one()
    local = (sent if sent.tzinfo else sent.replace(tzinfo=timezone.utc)).astimezone(
        ZoneInfo("Asia/Urumqi"))
    said = f"{local.year}年{local.month}月{local.day}日{local:%H:%M}发布"
    html = page(client.get(f"/announcements/{announcement_id}"))
    assert said in re.search(r'<blockquote id="withdrawal-text">([^<]+)</blockquote>', html).group(1)
    token = CSRF_FIELD.search(html).group(1)
    response = client.post(f"/announcements/{announcement_id}/cancel",
                           data={"csrf_token": token, "confirmed": "1", "correction": ""})
    withdrawal_id = int(response.location.rsplit("/", 1)[1])
    with app.extensions["engine"].connect() as conn:
        body = conn.execute(select(announcements.c.body)
                            .where(announcements.c.id == withdrawal_id)).scalar_one()
    assert said in body


def test_cancel_without_confirmed_shows_what_will_happen_and_cancels_nothing(app, client):
    announcement_id = released(client)
    run_jobs(app)
    html = page(client.get(f"/announcements/{announcement_id}"))
    # The cancel sits below the progress, not above it.
    assert html.index('id="watch"') < html.index('id="correction-form"')
    token = CSRF_FIELD.search(html).group(1)
    response = client.post(f"/announcements/{announcement_id}/cancel",
                           data={"csrf_token": token, "correction": "应为50毫米。"})
    assert response.status_code == 200 and state_of(app, announcement_id) == "done"
    confirm = page(response)
    words = re.search(r'id="cancel-words">\s*([^<]+?)\s*</p>', confirm).group(1)
    reached = len(RESIDENTS) - 1
    assert words.startswith("“暴雨红色预警”（较重/黄色·III级，钦南区）将撤销，")
    assert f"已收到的 {reached}（" in words
    assert 'name="confirmed" value="1"' in confirm
    assert 'name="correction" value="应为50毫米。"' in confirm  # carried to the confirmation
    response = client.post(f"/announcements/{announcement_id}/cancel",
                           data={"csrf_token": token, "confirmed": "1", "correction": ""})
    assert response.status_code == 302 and state_of(app, announcement_id) == "cancelled"


def test_withdrawing_before_sending_asks_first_too(app, client):
    login(client, "author")
    announcement_id = submit(client)
    token = csrf_token(client, f"/announcements/{announcement_id}")
    confirm = page(client.post(f"/announcements/{announcement_id}/cancel",
                               data={"csrf_token": token}))
    assert "发出前撤回：没有人会收到任何消息" in confirm
    assert state_of(app, announcement_id) == "awaiting_approval"
    client.post(f"/announcements/{announcement_id}/cancel",
                data={"csrf_token": token, "confirmed": "1"})
    assert state_of(app, announcement_id) == "cancelled"
    # Once cancelled there is nothing to confirm: back to the page with why.
    response = client.post(f"/announcements/{announcement_id}/cancel",
                           data={"csrf_token": token})
    assert response.status_code == 302
    assert "不在该状态" in page(client.get(response.location))


def test_a_correction_typed_with_the_cancel_waits_for_a_second_person(app, client):
    announcement_id = released(client)  # the approver is logged in and cancels
    run_jobs(app)
    before = announcement_count(app)
    token = csrf_token(client, f"/announcements/{announcement_id}")
    response = client.post(f"/announcements/{announcement_id}/cancel",
                           data={"csrf_token": token, "confirmed": "1", "correction": "雨量数据有误，应为50毫米。"})
    assert announcement_count(app) == before + 2  # the withdrawal notice and the correction
    update_id = announcement_count(app)
    assert f"您的更正为通知 {update_id}，经另一人审批后发出。" in page(client.get(response.location))
    run_jobs(app)
    assert state_of(app, update_id) == "awaiting_approval"
    html = page(client.get(f"/announcements/{update_id}"))
    assert "【更正】暴雨红色预警" in html
    assert 'id="approve-link"' not in html  # the canceller wrote it: someone else approves


def test_a_too_long_correction_is_refused_and_nothing_is_cancelled(app, client):
    announcement_id = released(client)
    token = csrf_token(client, f"/announcements/{announcement_id}")
    response = client.post(f"/announcements/{announcement_id}/cancel",
                           data={"csrf_token": token, "confirmed": "1", "correction": "长" * 4001})
    assert "未撤销任何通知" in page(client.get(response.location))
    assert state_of(app, announcement_id) != "cancelled"
