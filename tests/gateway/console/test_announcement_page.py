"""The web console through Flask's test client: logins, forms and their error paths, the
two-person rule, drills versus real alerts, corrections, rosters, and the public page.

Runs on SQLite and PostgreSQL with the real Redis (see tests/conftest.py).
"""
from __future__ import annotations

import io
import os
import re
import time
from datetime import timedelta

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from sqlalchemy import func, select

from gateway.store import accounts as users_service, ledger
from gateway.delivery import jobs
from gateway.web.console import auth as console_auth, queries
from gateway.store.db import utcnow
from gateway.store.schema import announcements, audit_log, deliveries, residents, users
from messages import audio
from tests.conftest import run_jobs
from tests.gateway.conftest import DISTRICT, RESIDENTS, VILLAGE_A

pytestmark = pytest.mark.integration

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
                    "Referrer-Policy")
ROSTER_HEADER = ("name,phone,wechat_openid,area_code,birth_year,visually_impaired,"
                 "hearing_impaired,has_smartphone,language,opt_out,test_audience\n")


@pytest.fixture
def client(app, county):
    return app.test_client()


def csrf_token(client, path="/login") -> str:
    return CSRF_FIELD.search(client.get(path).get_data(as_text=True)).group(1)


def login(client, name: str):
    response = client.post("/login", data={"name": name, "password": f"{name}-password",
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def logout(client):
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})


def compose_form(client, **overrides) -> dict:
    form = {"csrf_token": csrf_token(client, "/announcements/new"), "headline": "暴雨红色预警",
            "body": "预计未来3小时有特大暴雨。", "instruction": "请转移到安全地带。",
            "severity": "moderate", "status": "actual", "language": "zh", "msg_type": "alert",
            "areas": [DISTRICT], "channels": ["sms", "voice", "wechat", "loudspeaker"]}
    form.update(overrides)
    return {name: value for name, value in form.items() if value is not None}


def submit(client, **overrides) -> int:
    response = client.post("/announcements/new", data={**compose_form(client, **overrides),
                                                       "submit": "1"})
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.location.rsplit("/", 1)[1])


def approve(client, announcement_id: int):
    token = csrf_token(client, f"/announcements/{announcement_id}/approve")
    return client.post(f"/announcements/{announcement_id}/approve", data={"csrf_token": token})


def released(client) -> int:
    """An announcement the author submitted and the approver approved (left logged in)."""
    login(client, "author")
    announcement_id = submit(client)
    logout(client)
    login(client, "approver")
    assert approve(client, announcement_id).status_code == 302
    return announcement_id


def announcement_count(app) -> int:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(func.count()).select_from(announcements)).scalar_one()


def state_of(app, announcement_id: int) -> str:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(announcements.c.state)
                            .where(announcements.c.id == announcement_id)).scalar_one()


def page(response) -> str:
    return response.get_data(as_text=True)


# --- logging in ---------------------------------------------------------------------------

def test_pages_need_a_login(client):
    for path in ("/", "/announcements/new", "/residents", "/devices", "/outbox"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.startswith("/login")


def test_wrong_password_is_refused_and_the_right_one_lets_in(client):
    token = csrf_token(client)
    refused = client.post("/login", data={"name": "author", "password": "wrong-password",
                                          "csrf_token": token})
    assert refused.status_code == 200 and "用户名或密码错误" in page(refused)
    login(client, "author")
    assert client.get("/").status_code == 200


def test_missing_login_fields_are_refused(client):
    response = client.post("/login", data={"name": "author", "csrf_token": csrf_token(client)})
    assert "请输入用户名和密码" in page(response)
    assert client.get("/").status_code == 302


def test_five_failed_logins_lock_the_account_even_for_the_right_password(app, client):
    for _ in range(users_service.MAX_FAILED_LOGINS):
        client.post("/login", data={"name": "author", "password": "wrong-password",
                                    "csrf_token": csrf_token(client)})
    locked = client.post("/login", data={"name": "author", "password": "author-password",
                                         "csrf_token": csrf_token(client)})
    assert locked.status_code == 200 and "已锁定" in page(locked)
    assert client.get("/").status_code == 302
    with app.extensions["engine"].connect() as conn:
        user = conn.execute(select(users).where(users.c.name == "author")).one()
        locks = conn.execute(select(audit_log).where(audit_log.c.action == "lock")).all()
    assert user.locked_until is not None and len(locks) == 1


def test_the_lock_ends_after_its_minutes(app, client):
    with app.extensions["engine"].begin() as conn:
        conn.execute(users.update().where(users.c.name == "author")
                     .values(locked_until=utcnow() - timedelta(seconds=1)))
    login(client, "author")
    assert client.get("/").status_code == 200


def test_an_idle_session_times_out(app, client):
    login(client, "author")
    idle = timedelta(minutes=app.config.get("SESSION_MINUTES", 30), seconds=1)
    with client.session_transaction() as session:
        session["last_seen"] -= idle.total_seconds()
    response = client.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")
    assert "会话已超时" in page(client.get(response.location))


def test_polling_does_not_keep_an_idle_session_alive(app, client):
    login(client, "author")
    announcement_id = submit(client)
    with client.session_transaction() as session:
        before = session["last_seen"] = time.time() - 60
    client.get(f"/announcements/{announcement_id}/progress.json",
               headers={console_auth.BACKGROUND_HEADER: "1"})
    with client.session_transaction() as session:
        assert session["last_seen"] == before


def test_logout_ends_the_session(client):
    login(client, "author")
    logout(client)
    assert client.get("/").status_code == 302


# --- CSRF and headers ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/login", "/logout", "/language", "/announcements/new",
                                  "/announcements/draft.json", "/announcements/draft-audio",
                                  "/residents/import"])
def test_a_form_without_its_csrf_token_is_refused(client, path):
    login(client, "admin")
    response = client.post(path, data={"name": "author", "password": "author-password"})
    assert response.status_code == 400
    assert "表单已过期" in page(response)


def test_actions_without_csrf_token_change_nothing(app, client):
    login(client, "author")
    announcement_id = submit(client)
    logout(client)
    login(client, "approver")
    response = client.post(f"/announcements/{announcement_id}/approve")
    assert response.status_code == 400 and state_of(app, announcement_id) == "awaiting_approval"


def test_the_json_api_keeps_working_without_csrf(api):
    response = api("author").post("/api/v1/announcements", json={
        "headline": "h", "body": "b", "areas": [DISTRICT]})
    assert response.status_code == 201


def test_every_response_carries_the_security_headers(app, client, api):
    login(client, "author")
    announcement_id = submit(client)
    responses = [client.get("/login"), client.get("/"), client.get("/static/console.js"),
                 client.get(f"/a/{announcement_id}"), client.get("/no-such-page"),
                 client.post("/login"), api("author").get("/api/v1/outbox")]
    for response in responses:
        for header in SECURITY_HEADERS:
            assert header in response.headers, (response.request.path, header)
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


def test_pages_have_no_inline_scripts_or_styles(client):
    login(client, "author")
    for path in ("/", "/announcements/new"):
        html = page(client.get(path))
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert " style=" not in html and "<style" not in html


def test_an_unknown_announcement_is_a_404_page(client):
    login(client, "author")
    for path in ("/announcements/9999", "/announcements/9999/progress.json",
                 "/announcements/9999/unreached", "/announcements/9999/unreached.csv"):
        response = client.get(path)
        assert response.status_code == 404 and "没有这条通知" in page(response)


# --- compose and preview -----------------------------------------------------------------

@pytest.mark.parametrize("overrides, field", [
    ({"headline": ""}, "headline"),
    ({"body": "   "}, "body"),
    ({"headline": "长" * 141}, "headline"),
    ({"body": "长" * 4001}, "body"),
    ({"instruction": "长" * 1001}, "instruction"),
    ({"areas": None}, "areas"),
    ({"areas": ["450702999999"]}, "areas[0]"),
    ({"channels": None}, "channels"),
    ({"status": "panic"}, "status"),
    ({"expires": "2001-01-01T00:00"}, "expires"),
    ({"expires": "tomorrow"}, "expires"),
])
def test_compose_refuses_bad_input_and_saves_nothing(app, client, overrides, field):
    login(client, "author")
    for action in ({}, {"submit": "1"}):
        response = client.post("/announcements/new",
                               data={**compose_form(client, **overrides), **action})
        assert response.status_code == 422
        assert f"“{field}”" in page(response)
    assert announcement_count(app) == 0


def test_a_refused_form_keeps_what_was_typed(client):
    login(client, "author")
    response = client.post("/announcements/new",
                           data=compose_form(client, headline="", body="保留这段正文"))
    assert "保留这段正文" in page(response)


def test_compose_page_shows_the_area_tree_with_resident_counts(client):
    login(client, "author")
    html = page(client.get("/announcements/new"))
    district_residents = len(RESIDENTS) - 1
    assert re.search(rf'value="{DISTRICT}" data-residents="{district_residents}"', html)
    assert "沙埠村" in html and "新屋村" in html


def test_the_draft_renders_per_channel_while_typing(client):
    login(client, "author")
    rendered = client.post("/announcements/draft.json",
                           data=compose_form(client, status="exercise", headline="")).json
    assert set(rendered) == {"sms", "voice", "wechat", "loudspeaker"}
    assert rendered["sms"]["text"].startswith("【钦州发布】【演练】")
    assert rendered["sms"]["data"]["segments"] >= 1
    assert "演练" in rendered["voice"]["text"]
    assert rendered["wechat"]["data"]["template"]


def test_the_draft_speech_can_be_listened_to(client):
    login(client, "author")
    form = compose_form(client, status="exercise")
    synthesized = client.post("/announcements/draft-audio", data=form)
    assert synthesized.status_code == 200
    assert synthesized.json["url"].startswith("/media/a0-zh-")
    assert synthesized.json["seconds"] > 0
    served = client.get(synthesized.json["url"])
    assert served.status_code == 200 and served.mimetype == "audio/wav"
    assert served.data.startswith(b"RIFF") and served.data[8:12] == b"WAVE"
    # Content-addressed: the same draft gets the same file, a changed one another.
    assert client.post("/announcements/draft-audio", data=form).json == synthesized.json
    changed = client.post("/announcements/draft-audio", data={**form, "headline": "台风预警"})
    assert changed.json["url"] != synthesized.json["url"]


def test_draft_speech_an_hour_old_is_removed_when_a_new_draft_is_heard(app, client):
    login(client, "author")
    form = compose_form(client)
    first = client.post("/announcements/draft-audio", data=form).json["url"]
    first_file = os.path.join(app.config["MEDIA_DIR"], first.rsplit("/", 1)[1])
    two_hours_ago = time.time() - 7200
    os.utime(first_file, (two_hours_ago, two_hours_ago))
    second = client.post("/announcements/draft-audio", data={**form, "headline": "台风预警"}).json
    assert not os.path.exists(first_file) and client.get(first).status_code == 404
    assert client.get(second["url"]).status_code == 200


def test_a_failed_synthesis_says_so_in_the_clerks_language(client, monkeypatch):
    def fail(*args, **kwargs):
        raise audio.SynthesisError("espeak-ng is missing")
    monkeypatch.setattr(audio, "ensure_audio", fail)
    login(client, "author")
    response = client.post("/announcements/draft-audio", data=compose_form(client))
    assert response.status_code == 503 and "暂时无法合成语音" in response.json["error"]


def test_draft_audio_needs_a_login(client):
    response = client.post("/announcements/draft-audio",
                           data={"csrf_token": csrf_token(client), "headline": "h"})
    assert response.status_code == 302 and response.location.startswith("/login")
    polled = client.post("/announcements/draft-audio", data={"csrf_token": csrf_token(client)},
                         headers={console_auth.BACKGROUND_HEADER: "1"})
    assert polled.status_code == 401


def test_preview_shows_counts_and_weak_groups_before_anything_is_saved(app, client):
    login(client, "author")
    response = client.post("/announcements/new", data=compose_form(client, channels=["sms"]))
    html = page(response)
    assert response.status_code == 200 and announcement_count(app) == 0
    assert "7 位居民" in html                      # the district, the other district excluded
    assert 'class="weak"' in html                  # SMS alone is fewer than two channels
    assert "预计费用" in html and "提交审批" in html


def test_preview_then_submit_waits_for_approval(app, client):
    login(client, "author")
    announcement_id = submit(client)
    assert state_of(app, announcement_id) == "awaiting_approval"
    assert "等待审批" in page(client.get(f"/announcements/{announcement_id}"))


# --- approve, reject, the two-person rule -------------------------------------------------

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
    assert all(village["played"] == village["speakers"] for village in progress["loudspeakers"])
    failed = {(f["channel"], f["address"]) for f in progress["failures"]}
    assert progress["failures_total"] == len(failed) == \
        sum(by_status["failed"] for by_status in progress["deliveries"].values())


def test_the_progress_lists_failures_with_their_reason(app, client):
    announcement_id = released(client)
    with app.app_context():
        jobs.plan_announcement(announcement_id)  # deliveries written and queued, none sent
    with app.extensions["engine"].begin() as conn:
        first = conn.execute(select(deliveries.c.id).where(
            deliveries.c.announcement_id == announcement_id,
            deliveries.c.channel == "sms").order_by(deliveries.c.id).limit(1)).scalar_one()
        [claimed] = ledger.claim(conn, announcement_id, "sms", ids=[first])
        ledger.settle(conn, announcement_id, "sms", "failed",
                      [(first, None, "[21211] not a valid phone number")])
    progress = client.get(f"/announcements/{announcement_id}/progress.json").json
    assert progress["failures_total"] == 1
    assert progress["failures"] == [{"channel": "sms", "address": claimed.address, "attempts": 1,
                                     "error": "[21211] not a valid phone number",
                                     "at": progress["failures"][0]["at"]}]


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

def test_one_button_cancels_with_a_prefilled_correction(app, client):
    announcement_id = released(client)
    run_jobs(app)
    html = page(client.get(f"/announcements/{announcement_id}"))
    prefilled = re.search(r'<textarea name="correction"[^>]*>([^<]+)</textarea>', html).group(1)
    assert "暴雨红色预警" in prefilled
    token = CSRF_FIELD.search(html).group(1)
    response = client.post(f"/announcements/{announcement_id}/cancel",
                           data={"csrf_token": token, "correction": prefilled})
    correction_id = int(response.location.rsplit("/", 1)[1])
    run_jobs(app)
    assert state_of(app, announcement_id) == "cancelled"
    assert state_of(app, correction_id) == "done"
    public = page(client.get(f"/a/{announcement_id}"))
    assert "此通知已撤销" in public and f"/a/{correction_id}" in public


def test_an_empty_correction_is_refused(app, client):
    announcement_id = released(client)
    token = csrf_token(client, f"/announcements/{announcement_id}")
    response = client.post(f"/announcements/{announcement_id}/cancel",
                           data={"csrf_token": token, "correction": ""})
    assert "更正未发送" in page(client.get(response.location))
    assert state_of(app, announcement_id) != "cancelled"


# --- the public full text ---------------------------------------------------------------

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


# --- residents, devices, unreached -------------------------------------------------------

def upload(client, content: str):
    token = csrf_token(client, "/residents/import")
    return client.post("/residents/import", content_type="multipart/form-data",
                       data={"csrf_token": token,
                             "roster": (io.BytesIO(content.encode("utf-8")), "roster.csv")})


def resident_count(app) -> int:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(func.count()).select_from(residents)).scalar_one()


def test_a_bad_roster_lists_every_bad_row_and_saves_nothing(app, client):
    login(client, "admin")
    before = resident_count(app)
    response = upload(client, ROSTER_HEADER
                      + f"好人,13800000021,,{VILLAGE_A},1980,0,0,1,zh,,0\n"
                      + f"坏号码,12345,,{VILLAGE_A},1980,0,0,1,zh,,0\n"
                      + "无地区,13800000023,,450702999999,1980,0,0,1,zh,,0\n")
    html = page(response)
    assert response.status_code == 422 and 'id="csv-errors"' in html
    assert re.search(r"<td>3</td><td>phone</td>", html)
    assert re.search(r"<td>4</td><td>area_code</td>", html)
    assert resident_count(app) == before


def test_a_good_roster_is_imported(app, client):
    login(client, "admin")
    before = resident_count(app)
    response = upload(client, ROSTER_HEADER + f"新居民,13800000031,,{VILLAGE_A},1985,0,0,1,zh,,0\n")
    assert response.status_code == 302 and resident_count(app) == before + 1


def test_a_roster_upload_needs_a_file_and_an_admin(client):
    login(client, "admin")
    token = csrf_token(client, "/residents/import")
    assert client.post("/residents/import", data={"csrf_token": token}).status_code == 400
    logout(client)
    login(client, "author")
    assert client.get("/residents/import").status_code == 403


def test_residents_can_be_searched_and_edited_with_the_roster_rules(app, client):
    login(client, "admin")
    html = page(client.get("/residents?q=李娜"))
    resident_id = int(re.search(r"/residents/(\d+)/edit", html).group(1))
    edit_page = page(client.get(f"/residents/{resident_id}/edit"))
    token = CSRF_FIELD.search(edit_page).group(1)
    fields = {"csrf_token": token, "name": "李娜", "phone": "12345", "area_code": VILLAGE_A,
              "language": "zh", "birth_year": "1990", "has_smartphone": "1"}
    refused = client.post(f"/residents/{resident_id}/edit", data=fields)
    assert refused.status_code == 422 and 'class="field-error"' in page(refused)
    saved = client.post(f"/residents/{resident_id}/edit",
                        data={**fields, "phone": "13800000099", "hearing_impaired": "1"})
    assert saved.status_code == 302
    with app.extensions["engine"].connect() as conn:
        row = conn.execute(select(residents).where(residents.c.id == resident_id)).one()
    assert row.phone == "+8613800000099" and row.hearing_impaired


def test_devices_show_online_and_offline(app, client):
    from gateway.store.schema import devices
    with app.extensions["engine"].begin() as conn:
        conn.execute(devices.update().where(devices.c.device_id == "spk-a").values(online=True))
        conn.execute(devices.update().where(devices.c.device_id == "spk-b").values(online=False))
    login(client, "author")
    html = page(client.get("/devices"))
    assert re.search(r"spk-a.*?在线", html, re.S) and re.search(r"spk-b.*?离线", html, re.S)


def test_the_unreached_list_as_a_printable_page_and_as_csv(app, client):
    login(client, "author")
    announcement_id = submit(client, channels=["wechat"])
    logout(client)
    login(client, "approver")
    approve(client, announcement_id)
    run_jobs(app)
    elderly = RESIDENTS["elderly"][0]
    printable = page(client.get(f"/announcements/{announcement_id}/unreached"))
    assert elderly.name in printable and "新屋村" in printable
    csv_text = page(client.get(f"/announcements/{announcement_id}/unreached.csv"))
    assert csv_text.startswith("\ufeff") and elderly.phone in csv_text
    only_a = page(client.get(f"/announcements/{announcement_id}/unreached.csv?area={VILLAGE_A}"))
    assert elderly.phone not in only_a


# --- audit log, outbox, languages ---------------------------------------------------------

def test_the_audit_log_shows_who_did_what_to_approvers_only(client):
    login(client, "author")
    submit(client)
    assert client.get("/audit").status_code == 403
    logout(client)
    login(client, "admin")
    html = page(client.get("/audit?actor=author"))
    assert "create" in html and "login" in html


def test_the_outbox_shows_what_residents_would_receive(app, client):
    announcement_id = released(client)
    run_jobs(app)
    html = page(client.get(f"/outbox?announcement={announcement_id}&channel=sms"))
    assert RESIDENTS["young sms only"][0].phone in html and "暴雨红色预警" in html


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
