"""WeChat through the gateway: template messages to followers, non-followers moved to SMS,
and a used-up daily quota pausing the channel (issue 5, gateway side)."""
from __future__ import annotations

import threading
import time

import pytest
from babel.support import Translations
from sqlalchemy import select, update

import gateway
from channels.wechat import ACCOUNT_ERRORS, QUOTA_EXHAUSTED
from gateway.web.console.announcements import PAUSE_CAUSES

from gateway.store.schema import deliveries, residents
from tests.conftest import run_jobs
from tests.fakes.wechat_server import FakeWechat, job_finish_event, signed_query
from gateway.store import roster
from tests.gateway.conftest import OTHER_DISTRICT_VILLAGE, RESIDENTS, VILLAGE_A, announcement
from tests.gateway.console.conftest import csrf_token, login

pytestmark = pytest.mark.integration


@pytest.fixture
def wechat():
    server = FakeWechat().start()
    yield server
    server.stop()


@pytest.fixture
def app(make_app, database_url, wechat):
    return make_app(database_url, WECHAT_APP_ID=wechat.app_id, WECHAT_APP_SECRET=wechat.app_secret,
                    WECHAT_TEMPLATE_ID="tmpl-1", WECHAT_API_BASE=wechat.url,
                    WECOM_API_BASE=wechat.url)


def set_openid(app, name, openid):
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(residents).where(residents.c.name == name).values(wechat_openid=openid))


def rows(app, announcement_id):
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(deliveries.c.channel, deliveries.c.address, deliveries.c.status,
                                   deliveries.c.last_error)
                            .where(deliveries.c.announcement_id == announcement_id)).all()


def publish(api, **fields):
    created = api("author").post("/api/v1/announcements", json=announcement(**fields)).json
    api("approver").post(f"/api/v1/announcements/{created['id']}/approve")
    return created["id"]


def test_followers_get_one_template_message_and_non_followers_move_to_sms(app, api, wechat):
    set_openid(app, "王小明", "o-not-follower")
    announcement_id = publish(api, channels=["wechat", "sms"])
    run_jobs(app)
    sends = wechat.requests_to("/cgi-bin/message/template/send")
    followers = {RESIDENTS[name][0].wechat_openid for name in ("deaf", "drill tester")}
    assert {s.body["touser"] for s in sends} == followers | {"o-not-follower"}
    assert all(s.body["template_id"] == "tmpl-1" for s in sends)
    assert wechat.token_fetches == 1
    ledger = {(r.channel, r.address): r for r in rows(app, announcement_id)}
    assert ledger[("wechat", "o-not-follower")].status == "failed"
    assert "43004" in ledger[("wechat", "o-not-follower")].last_error
    moved = ledger[("sms", RESIDENTS["young follower"][0].phone)]
    assert moved.status == "delivered"  # the outbox stands in for SMS here
    # The deaf resident already had SMS planned: never two of the same.
    assert sum(1 for r in rows(app, announcement_id) if r.address == RESIDENTS["deaf"][0].phone) == 1


def test_a_used_up_quota_pauses_the_channel_and_says_so(app, api, wechat):
    set_openid(app, "王小明", "o-quota")
    announcement_id = publish(api, channels=["wechat"])
    run_jobs(app, scheduled=False)
    status = api("author").get(f"/api/v1/announcements/{announcement_id}").json
    paused = status["paused_channels"]["wechat"]
    assert "quota" in paused["reason"] and paused["seconds_left"] > 0
    statuses = {r.status for r in rows(app, announcement_id)}
    assert "failed" not in statuses and "planned" in statuses  # held for after the reset
    with app.extensions["engine"].connect() as conn:
        attempts = conn.execute(select(deliveries.c.attempts)
                                .where(deliveries.c.status == "planned")).scalars().all()
    assert attempts and all(a == 0 for a in attempts)


def test_an_account_error_pauses_wechat_and_fails_nobody(app, api, wechat):
    wechat.account_error = 40037  # the configured template id is not the account's
    announcement_id = publish(api, channels=["wechat"])
    run_jobs(app, scheduled=False)

    assert len(wechat.requests_to("/cgi-bin/message/template/send")) == 1  # then it stopped
    ledger = rows(app, announcement_id)
    assert {r.channel for r in ledger} == {"wechat"}  # nobody moved to SMS
    assert "failed" not in {r.status for r in ledger}
    paused = api("author").get(f"/api/v1/announcements/{announcement_id}").json[
        "paused_channels"]["wechat"]
    assert paused["reason"].startswith("[40037]") and 0 < paused["seconds_left"] <= 600

    console = app.test_client()
    login(console, "author")
    progress = console.get(f"/announcements/{announcement_id}/progress.json").json
    assert progress["paused_channels"]["wechat"]["cause"] == \
        "微信找不到该模板：请检查 WECHAT_TEMPLATE_ID。"
    console.post("/language", data={"csrf_token": csrf_token(console, "/"), "language": "en",
                                    "next": "/"})
    progress = console.get(f"/announcements/{announcement_id}/progress.json").json
    assert progress["paused_channels"]["wechat"]["cause"] == \
        "WeChat does not know the template: check WECHAT_TEMPLATE_ID."


def test_each_village_group_robot_in_the_area_gets_one_post(app, api, wechat):
    with app.extensions["engine"].begin() as conn:
        roster.add_robot(conn, "沙埠村群", VILLAGE_A, "robot-key-1")
        roster.add_robot(conn, "大寺村群", OTHER_DISTRICT_VILLAGE, "robot-key-2")
    preview = api("approver").get(f"/api/v1/announcements/{draft(api)}/preview").json
    assert preview["deliveries"]["wecom_robot"] == 1
    announcement_id = publish(api, channels=["wechat"])
    run_jobs(app)
    posts = wechat.requests_to("/cgi-bin/webhook/send")
    assert [p.query["key"] for p in posts] == ["robot-key-1"]
    assert posts[0].body["msgtype"] == "markdown"
    assert "暴雨红色预警" in posts[0].body["markdown"]["content"]
    ledger = {(r.channel, r.address): r.status for r in rows(app, announcement_id)}
    assert ledger[("wecom_robot", "robot-key-1")] == "delivered"
    status = api("author").get(f"/api/v1/announcements/{announcement_id}").json
    # Robots reach groups: not counted as people.
    assert status["personal_deliveries"] == sum(status["deliveries"]["wechat"].values())
    drill = publish(api, channels=["wechat"], status="exercise")
    run_jobs(app)
    assert all(r.channel != "wecom_robot" for r in rows(app, drill))


def draft(api):
    return api("author").post("/api/v1/announcements", json=announcement(channels=["wechat"])).json["id"]


CALLBACK_TOKEN = "callback-token-1"


@pytest.fixture
def reporting_app(make_app, database_url, wechat):
    return make_app(database_url, WECHAT_APP_ID=wechat.app_id, WECHAT_APP_SECRET=wechat.app_secret,
                    WECHAT_TEMPLATE_ID="tmpl-1", WECHAT_API_BASE=wechat.url,
                    WECOM_API_BASE=wechat.url, WECHAT_CALLBACK_TOKEN=CALLBACK_TOKEN)


def sent_to(app, announcement_id, openid):
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(deliveries.c.id, deliveries.c.status, deliveries.c.provider_id,
                                   deliveries.c.last_error)
                            .where(deliveries.c.announcement_id == announcement_id,
                                   deliveries.c.channel == "wechat",
                                   deliveries.c.address == openid)).one()


def report(app, body, *, token=CALLBACK_TOKEN, **query):
    return app.test_client().post("/webhooks/wechat", query_string={**signed_query(token), **query},
                                  data=body, content_type="text/xml")


def young_follower_sent(app, api, wechat):
    """An announcement sent over WeChat to the young follower (WeChat only, SMS as fallback)."""
    announcement_id = publish(api, channels=["wechat", "sms"])
    run_jobs(app)
    openid = RESIDENTS["young follower"][0].wechat_openid
    row = sent_to(app, announcement_id, openid)
    assert row.status == "sent"
    [shown] = [m for m in wechat.shown if m["touser"] == openid]
    assert row.provider_id == str(shown["msgid"])
    return announcement_id, openid, row


def test_the_callback_url_is_verified_with_its_signed_echostr(reporting_app):
    client = reporting_app.test_client()
    answer = client.get("/webhooks/wechat",
                        query_string={**signed_query(CALLBACK_TOKEN), "echostr": "5837391529"})
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "5837391529")
    forged = client.get("/webhooks/wechat",
                        query_string={**signed_query("not-the-token"), "echostr": "5837391529"})
    assert forged.status_code == 403 and "5837391529" not in forged.get_data(as_text=True)


def test_a_success_report_marks_the_wechat_delivery_delivered(reporting_app, api, wechat):
    announcement_id, openid, row = young_follower_sent(reporting_app, api, wechat)

    answer = report(reporting_app, job_finish_event(row.provider_id, openid, "success"))

    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "success")
    assert sent_to(reporting_app, announcement_id, openid).status == "delivered"
    status = api("author").get(f"/api/v1/announcements/{announcement_id}").json
    assert status["deliveries"]["wechat"].get("delivered") == 1


@pytest.mark.parametrize("failure", ["failed:user block", "failed: system failed"])
def test_a_failed_report_fails_the_delivery_and_escalates_to_sms(reporting_app, api, wechat,
                                                                  failure):
    announcement_id, openid, row = young_follower_sent(reporting_app, api, wechat)
    phone = RESIDENTS["young follower"][0].phone
    assert ("sms", phone) not in {(r.channel, r.address) for r in rows(reporting_app,
                                                                       announcement_id)}

    assert report(reporting_app, job_finish_event(row.provider_id, openid, failure)).status_code \
        == 200
    run_jobs(reporting_app)

    failed = sent_to(reporting_app, announcement_id, openid)
    assert failed.status == "failed" and failure in failed.last_error
    ledger = {(r.channel, r.address): r.status for r in rows(reporting_app, announcement_id)}
    assert ledger[("sms", phone)] == "delivered"  # the outbox stands in for SMS here


def test_a_forged_report_changes_nothing(reporting_app, api, wechat):
    announcement_id, openid, row = young_follower_sent(reporting_app, api, wechat)
    body = job_finish_event(row.provider_id, openid, "failed:user block")

    assert report(reporting_app, body, token="guessed-token").status_code == 403
    unsigned = reporting_app.test_client().post("/webhooks/wechat", data=body,
                                                content_type="text/xml")
    assert unsigned.status_code == 403
    tampered = {**signed_query(CALLBACK_TOKEN), "nonce": "another-nonce"}
    assert reporting_app.test_client().post("/webhooks/wechat", query_string=tampered,
                                            data=body).status_code == 403
    assert sent_to(reporting_app, announcement_id, openid).status == "sent"


def test_reports_are_refused_while_no_callback_token_is_configured(app, county):
    answer = app.test_client().post("/webhooks/wechat", query_string=signed_query(""),
                                    data=job_finish_event(1, "o", "success"))
    assert answer.status_code == 403


def test_a_report_for_an_unknown_msgid_is_acknowledged_and_logged(reporting_app, api, wechat,
                                                                  caplog):
    announcement_id, openid, row = young_follower_sent(reporting_app, api, wechat)

    with caplog.at_level("WARNING", logger="gateway.web.webhooks"):
        answer = report(reporting_app, job_finish_event("999999999", openid, "failed:user block"))

    assert answer.status_code == 200
    assert "999999999" in caplog.text
    assert sent_to(reporting_app, announcement_id, openid).status == "sent"


@pytest.mark.parametrize("body", [
    b"<xml><MsgType>event",
    b"not xml at all",
    b"",
    b'<!DOCTYPE xml [<!ENTITY big "aaaaaaaaaa">]><xml><MsgID>&big;</MsgID></xml>',
    b"<html><body/></html>",
    b"<xml><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event>"
    b"<Status>success</Status></xml>",  # no MsgID
])
def test_a_malformed_body_is_a_bad_request(reporting_app, county, body):
    assert report(reporting_app, body).status_code == 400


def test_other_messages_and_events_are_acknowledged_and_ignored(reporting_app, api, wechat):
    announcement_id, openid, row = young_follower_sent(reporting_app, api, wechat)
    subscribe = (f"<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
                 "</FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                 "<Event><![CDATA[subscribe]]></Event></xml>")

    assert report(reporting_app, subscribe).status_code == 200
    assert sent_to(reporting_app, announcement_id, openid).status == "sent"


def test_a_report_that_overtakes_the_job_recording_its_msgid_is_taken(reporting_app, api,
                                                                      wechat):
    wechat.reply_delay = 0.5  # each message is shown half a second before the job hears
    announcement_id = publish(api, channels=["wechat"])
    openid = RESIDENTS["young follower"][0].wechat_openid
    seen = {}

    def report_as_soon_as_shown():  # as WeChat does, while the job is still sending
        deadline = time.monotonic() + 30
        while not any(m["touser"] == openid for m in wechat.shown):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        [shown] = [m for m in wechat.shown if m["touser"] == openid]
        seen["status"] = sent_to(reporting_app, announcement_id, openid).status
        seen["answer"] = report(reporting_app, job_finish_event(shown["msgid"], openid,
                                                                "success")).status_code

    reporter = threading.Thread(target=report_as_soon_as_shown)
    reporter.start()
    run_jobs(reporting_app)  # rq's worker wants the main thread
    reporter.join(timeout=30)

    assert seen == {"status": "sending", "answer": 200}
    assert sent_to(reporting_app, announcement_id, openid).status == "delivered"


def test_every_pausing_wechat_error_has_a_cause_in_words_in_both_languages():
    """A code added to the channel's account errors without console words would show raw."""
    codes = {str(code) for code in ACCOUNT_ERRORS} | {QUOTA_EXHAUSTED}
    assert codes <= set(PAUSE_CAUSES)
    folder = f"{gateway.__path__[0]}/translations"
    chinese = Translations.load(folder, ["zh"])
    for code in codes:
        assert chinese.gettext(PAUSE_CAUSES[code]) != PAUSE_CAUSES[code], code
