"""SMS and calls through the real twilio library to a local Twilio-compatible server,
and its signed callbacks back into the ledger (issues 3 and 4, gateway side)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from gateway.store import roster
from gateway.store.schema import deliveries, inbound_messages, residents
from tests.conftest import run_jobs
from tests.gateway.conftest import RESIDENTS, VILLAGE_A, announcement, person
from tests.gateway.console.conftest import login

pytestmark = pytest.mark.integration
PUBLIC = "https://tongbao.example.gov.cn/gw"  # behind a proxy: signatures use the public URL


@pytest.fixture
def app(make_app, database_url, twilio):
    return make_app(database_url, PUBLIC_BASE_URL=PUBLIC, TWILIO_ACCOUNT_SID=twilio.account_sid,
                    TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_FROM_NUMBER="+15005550006",
                    TWILIO_API_BASE=twilio.url, VOICE_RETRY_DELAY_SECONDS=0)


def deliver(client, callback):
    """Post a signed callback to the app, at the path of its public URL."""
    parts = urlsplit(callback.url)
    path = parts.path.removeprefix(urlsplit(PUBLIC).path)
    return client.post(path + (f"?{parts.query}" if parts.query else ""), data=callback.params,
                       headers=callback.headers)


def ledger_rows(app, announcement_id, channel):
    with app.extensions["engine"].connect() as conn:
        return {row.address: row for row in conn.execute(
            select(deliveries).where(deliveries.c.announcement_id == announcement_id,
                                     deliveries.c.channel == channel))}


def publish(api, **fields):
    created = api("author").post("/api/v1/announcements", json=announcement(**fields)).json
    api("approver").post(f"/api/v1/announcements/{created['id']}/approve")
    return created["id"]


def sent_to(twilio, kind):
    return [r.form["To"] for r in twilio.requests if r.path.endswith(f"/{kind}.json")]


def test_one_sms_per_resident_and_callbacks_move_the_ledger(app, api, twilio):
    announcement_id = publish(api, channels=["sms"])
    run_jobs(app)
    expected = {p.phone for name, (p, _) in RESIDENTS.items() if name != "other district"}
    assert sorted(sent_to(twilio, "Messages")) == sorted(expected)
    rows = ledger_rows(app, announcement_id, "sms")
    assert {row.status for row in rows.values()} == {"sent"}
    first = next(iter(twilio.messages))
    form = twilio.messages[first]["form"]
    assert form["Body"].startswith("【钦州发布】") and f"{PUBLIC}/a/{announcement_id}" in form["Body"]
    assert form["StatusCallback"].startswith(f"{PUBLIC}/webhooks/twilio/sms/")
    client = app.test_client()
    assert deliver(client, twilio.status_callback(first, "delivered")).status_code == 200
    assert deliver(client, twilio.status_callback(first, "sent")).status_code == 200  # late
    assert deliver(client, twilio.status_callback(first, "delivered")).status_code == 200  # again
    row = ledger_rows(app, announcement_id, "sms")[twilio.messages[first]["to"]]
    assert (row.status, row.provider_id) == ("delivered", first)
    counts = api("author").get(f"/api/v1/announcements/{announcement_id}").json["deliveries"]
    assert counts["sms"]["delivered"] == 1 and counts["sms"]["sent"] == len(expected) - 1


def test_forged_and_tampered_callbacks_are_refused(app, api, twilio):
    publish(api, channels=["sms"])
    run_jobs(app)
    sid = next(iter(twilio.messages))
    good = twilio.status_callback(sid, "delivered")
    client = app.test_client()
    tampered = type(good)(good.url, {**good.params, "MessageStatus": "failed"}, good.headers)
    assert deliver(client, tampered).status_code == 403
    unsigned = type(good)(good.url, good.params, {})
    assert deliver(client, unsigned).status_code == 403
    other_row = type(good)(good.url.rsplit("/", 1)[0] + "/999999", good.params, good.headers)
    assert deliver(client, other_row).status_code == 403  # the id is inside the signed URL
    with app.extensions["engine"].connect() as conn:
        assert set(conn.execute(select(deliveries.c.status)).scalars()) == {"sent"}


def test_a_signed_callback_about_another_message_or_call_changes_nothing(app, api, twilio,
                                                                        caplog):
    """Signed by Twilio, but naming a sid that is not this delivery's: 200, logged, no change."""
    announcement_id = publish(api, channels=["sms", "voice"])
    run_jobs(app)
    client = app.test_client()
    for kind, records, status in (("sms", twilio.messages, "undelivered"),
                                  ("voice", twilio.calls, "failed")):
        mine, other = list(records)[:2]
        victim = ledger_rows(app, announcement_id, kind)[records[mine]["to"]]
        other_callback = twilio.status_callback(other, status, error_code=30005)
        # The other message's (or call's) callback, validly signed for this delivery's URL.
        forged = twilio.sign(records[mine]["form"]["StatusCallback"], other_callback.params)
        with caplog.at_level("WARNING", logger="gateway.delivery.outcomes"):
            assert deliver(client, forged).status_code == 200
        assert other in caplog.text and f"delivery {victim.id}" in caplog.text
        after = ledger_rows(app, announcement_id, kind)[records[mine]["to"]]
        assert (after.status, after.provider_id, after.last_error) == \
            (victim.status, mine, victim.last_error) and victim.status == "sent"
    counts = api("author").get(f"/api/v1/announcements/{announcement_id}").json["deliveries"]
    assert counts["sms"].get("failed", 0) == 0 and counts["voice"].get("failed", 0) == 0
    # The delivery's own callback still moves it.
    sid = next(iter(twilio.messages))
    assert deliver(client, twilio.status_callback(sid, "delivered")).status_code == 200
    assert ledger_rows(app, announcement_id, "sms")[twilio.messages[sid]["to"]].status == \
        "delivered"


def test_a_permanent_sms_failure_escalates_to_a_call(app, api, twilio):
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [person("冯静", VILLAGE_A, phone="+8613800000002")])
    announcement_id = publish(api, channels=["sms", "voice"])
    run_jobs(app)
    sms = ledger_rows(app, announcement_id, "sms")["+8613800000002"]
    assert sms.status == "failed" and "21610" in sms.last_error
    assert "+8613800000002" in ledger_rows(app, announcement_id, "voice")
    assert sent_to(twilio, "Calls").count("+8613800000002") == 1


def test_reply_1_confirms_and_td_opts_out(app, api, twilio):
    announcement_id = publish(api, channels=["sms"])
    run_jobs(app)
    phone = RESIDENTS["young sms only"][0].phone
    client = app.test_client()
    inbound = f"{PUBLIC}/webhooks/twilio/inbound"
    assert deliver(client, twilio.inbound_callback(inbound, phone, " １ ")).status_code == 200
    assert ledger_rows(app, announcement_id, "sms")[phone].status == "confirmed"
    assert deliver(client, twilio.inbound_callback(inbound, phone, "退订")).status_code == 200
    assert deliver(client, twilio.inbound_callback(inbound, phone, "什么时候停雨？")).status_code == 200
    forged = twilio.inbound_callback(inbound, phone, "TD")
    assert deliver(client, type(forged)(forged.url, forged.params, {})).status_code == 403
    with app.extensions["engine"].connect() as conn:
        opt_out = conn.execute(select(residents.c.opt_out).where(residents.c.phone == phone)).scalar()
        kept = conn.execute(select(inbound_messages.c.intent, inbound_messages.c.body)
                            .order_by(inbound_messages.c.id)).all()
    assert opt_out == "sms"
    assert [intent for intent, _ in kept] == ["confirm", "opt_out", "other"]
    assert kept[-1].body == "什么时候停雨？"
    later = publish(api, channels=["sms"])
    run_jobs(app)
    assert phone not in ledger_rows(app, later, "sms")
    extreme = publish(api, channels=["sms"], severity="extreme")
    run_jobs(app)
    assert phone in ledger_rows(app, extreme, "sms")  # an opt-out does not hold for extreme


def test_a_call_plays_the_speech_and_1_confirms(app, api, twilio):
    announcement_id = publish(api, channels=["voice"])
    run_jobs(app)
    blind = RESIDENTS["blind"][0].phone
    sid = next(s for s, c in twilio.calls.items() if c["to"] == blind)
    twiml = twilio.twiml[sid]
    assert "<Play>" in twiml and f"{PUBLIC}/media/a{announcement_id}-zh-" in twiml
    audio_path = urlsplit(twiml.split("<Play>")[1].split("</Play>")[0]).path
    audio = app.test_client().get(audio_path.removeprefix(urlsplit(PUBLIC).path))
    assert audio.status_code == 200 and audio.mimetype == "audio/wav"
    assert audio.data[:4] == b"RIFF" and len(audio.data) > 10_000
    client = app.test_client()
    pressed = deliver(client, twilio.gather_callback(sid, "1"))
    assert pressed.status_code == 200 and "<Hangup" in pressed.get_data(as_text=True)
    deliver(client, twilio.status_callback(sid, "completed", duration=40))
    assert ledger_rows(app, announcement_id, "voice")[blind].status == "confirmed"


def test_an_unanswered_call_is_retried_then_the_resident_is_unreached(app, api, twilio):
    announcement_id = publish(api, channels=["voice"], areas=[VILLAGE_A])
    run_jobs(app)
    blind = RESIDENTS["blind"][0].phone
    client = app.test_client()
    for attempt in range(1, 4):
        sid = [s for s, c in twilio.calls.items() if c["to"] == blind][-1]
        deliver(client, twilio.status_callback(sid, "no-answer"))
        row = ledger_rows(app, announcement_id, "voice")[blind]
        assert row.attempts == attempt
        run_jobs(app)  # rq's scheduler hands the retry over when it is due
    assert sent_to(twilio, "Calls").count(blind) == 3
    row = ledger_rows(app, announcement_id, "voice")[blind]
    assert row.status == "failed" and "not answered after 3 calls" in row.last_error
    unreached = api("approver").get(f"/api/v1/announcements/{announcement_id}/unreached").json
    tried = {p["name"]: p["tried"] for p in unreached["residents"]}
    assert tried["张伟"][0]["channel"] == "voice" and tried["张伟"][0]["attempts"] == 3


def test_a_vulnerable_resident_is_called_until_they_confirm_a_severe_notice(app, api, twilio):
    announcement_id = publish(api, channels=["voice"], areas=[VILLAGE_A], severity="severe")
    run_jobs(app)
    blind = RESIDENTS["blind"][0].phone
    client = app.test_client()
    first = [s for s, c in twilio.calls.items() if c["to"] == blind][-1]
    deliver(client, twilio.status_callback(first, "completed", duration=50))  # no key pressed
    row = ledger_rows(app, announcement_id, "voice")[blind]
    assert (row.status, row.provider_id) == ("planned", None)  # the next call's callbacks may
    run_jobs(app)                                              # overtake the job recording it
    second = [s for s, c in twilio.calls.items() if c["to"] == blind][-1]
    assert second != first
    deliver(client, twilio.gather_callback(first, "1"))  # the first call's: refused now
    assert ledger_rows(app, announcement_id, "voice")[blind].status == "sent"
    deliver(client, twilio.gather_callback(second, "1"))
    deliver(client, twilio.status_callback(second, "completed", duration=50))
    row = ledger_rows(app, announcement_id, "voice")[blind]
    assert (row.status, row.attempts) == ("confirmed", 2)


def test_replays_wait_the_configured_gather_seconds(app, api, twilio):
    app.config["VOICE_GATHER_SECONDS"] = 15
    publish(api, channels=["voice"], areas=[VILLAGE_A])
    run_jobs(app)
    blind = RESIDENTS["blind"][0].phone
    sid = next(s for s, c in twilio.calls.items() if c["to"] == blind)
    assert 'timeout="15"' in twilio.twiml[sid]
    for digits in ("", "2"):  # silence replays once, 2 replays on request
        replay = deliver(app.test_client(), twilio.gather_callback(sid, digits))
        assert "<Play>" in replay.get_data(as_text=True)
        assert 'timeout="15"' in replay.get_data(as_text=True)


DEAD_NUMBER = "+8613800000001"  # the stand-in answers 21211 for it, to SMS and calls alike


def test_a_dead_number_is_tried_once_marked_and_left_to_the_grid_worker(app, api, twilio):
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [person("号码错", VILLAGE_A, phone=DEAD_NUMBER, visual=True)])
    announcement_id = publish(api, channels=["sms", "voice", "wechat"], areas=[VILLAGE_A])
    run_jobs(app)
    tries = [r for r in twilio.requests if r.form.get("To") == DEAD_NUMBER]
    assert len(tries) == 1  # the SMS or the call, whichever went first; never both
    statuses = {channel: ledger_rows(app, announcement_id, channel).get(DEAD_NUMBER)
                for channel in ("sms", "voice")}
    assert {row.status for row in statuses.values()} == {"failed"}
    with app.extensions["engine"].connect() as conn:
        mark = conn.execute(select(residents.c.phone_invalid)
                            .where(residents.c.phone == DEAD_NUMBER)).scalar_one()
    assert mark.startswith("[21211] ")
    unreached = api("approver").get(f"/api/v1/announcements/{announcement_id}/unreached").json
    flags = {p["name"]: p["phone_invalid"] for p in unreached["residents"]}
    assert flags["号码错"] is True and flags["张伟"] is False
    console = app.test_client()
    login(console, "approver")
    sheet = console.get(f"/announcements/{announcement_id}/unreached").get_data(as_text=True)
    assert re.search(r"号码错</td><td>\+8613800000001 <span class=\"badge invalid\">号码无效</span>",
                     sheet)


def test_a_call_failed_for_a_transient_reason_is_made_again(app, api, twilio):
    announcement_id = publish(api, channels=["voice"], areas=[VILLAGE_A])
    run_jobs(app)
    blind = RESIDENTS["blind"][0].phone
    sid = [s for s, c in twilio.calls.items() if c["to"] == blind][-1]
    deliver(app.test_client(), twilio.status_callback(sid, "failed", error_code=30003))
    row = ledger_rows(app, announcement_id, "voice")[blind]
    assert (row.status, row.last_error) == ("planned", "[30003] handset unreachable (off or out "
                                                       "of coverage)")
    run_jobs(app)
    assert sent_to(twilio, "Calls").count(blind) == 2


def test_an_sms_over_the_daily_cap_pauses_sms_and_fails_nobody(app, api, twilio):
    announcement_id = publish(api, channels=["sms"], areas=[VILLAGE_A])
    run_jobs(app)
    phone = RESIDENTS["young sms only"][0].phone
    sid = next(s for s, m in twilio.messages.items() if m["to"] == phone)
    deliver(app.test_client(), twilio.status_callback(sid, "undelivered", error_code=30023))
    assert ledger_rows(app, announcement_id, "sms")[phone].status == "planned"
    status = api("approver").get(f"/api/v1/announcements/{announcement_id}").json
    assert status["paused_channels"]["sms"]["reason"] == "[30023] daily message cap reached"
    assert status["deliveries"]["sms"].get("failed", 0) == 0


def test_a_cantonese_speaker_is_called_and_replayed_in_cantonese(app, api, twilio):
    from dataclasses import replace
    cantonese = replace(person("黄伯", VILLAGE_A, phone="+8613800000041", visual=True, born=1950),
                        spoken_language="yue")
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [cantonese])
    announcement_id = publish(api, channels=["voice"])
    run_jobs(app)
    calls = {c["to"]: s for s, c in twilio.calls.items()}
    yue_twiml = twilio.twiml[calls[cantonese.phone]]
    assert f"{PUBLIC}/media/a{announcement_id}-zh-yue-" in yue_twiml
    assert f"{PUBLIC}/media/a{announcement_id}-zh-cmn-latn-pinyin-" in \
        twilio.twiml[calls[RESIDENTS["blind"][0].phone]]
    replayed = deliver(app.test_client(), twilio.gather_callback(calls[cantonese.phone], "2"))
    assert f"{PUBLIC}/media/a{announcement_id}-zh-yue-" in replayed.get_data(as_text=True)
