"""From approval to the ledger: planning, batches on rq, the outbox, cancel and the reconciler.

Runs on SQLite and PostgreSQL with the real Redis and real rq jobs.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from channels import outbox
from gateway.delivery import jobs, providers, queues, reconciler
from gateway.store import ledger, roster
from gateway.store.schema import audit_log, deliveries
from tests.conftest import run_jobs
from tests.gateway.conftest import RESIDENTS, VILLAGE_B, announcement, person

pytestmark = pytest.mark.integration


def publish(api, **fields) -> int:
    created = api("author").post("/api/v1/announcements", json=announcement(**fields))
    assert created.status_code == 201, created.json
    approved = api("approver").post(f"/api/v1/announcements/{created.json['id']}/approve")
    assert approved.status_code == 200, approved.json
    return created.json["id"]


def planned(app, announcement_id) -> dict[str, set[tuple[str, str]]]:
    """Channel -> {(address, status)} from the ledger."""
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(deliveries.c.channel, deliveries.c.address, deliveries.c.status)
                            .where(deliveries.c.announcement_id == announcement_id)).all()
    result: dict[str, set] = {}
    for row in rows:
        result.setdefault(row.channel, set()).add((row.address, row.status))
    return result


def expected_addresses(channel: str, *, exclude=("other district",)) -> set[str]:
    addresses = set()
    for name, (profile, channels) in RESIDENTS.items():
        if name in exclude or channel not in channels:
            continue
        addresses.add(profile.wechat_openid if channel == "wechat" else profile.phone)
    return addresses


def test_every_resident_gets_their_channels_once(app, api):
    announcement_id = publish(api)
    run_jobs(app)
    ledger = planned(app, announcement_id)
    for channel in ("sms", "voice", "wechat"):
        assert {address for address, _ in ledger[channel]} == expected_addresses(channel)
        assert {status for _, status in ledger[channel]} == {"delivered"}
    assert {address for address, _ in ledger["loudspeaker"]} == {"spk-a", "spk-b"}
    status = api("author").get(f"/api/v1/announcements/{announcement_id}").json
    assert status["state"] == "done"
    assert status["deliveries"]["sms"]["delivered"] == len(expected_addresses("sms"))
    assert status["reached_residents"] == len(RESIDENTS) - 1
    records, total = outbox.read(providers.outbox_path(app), announcement_id=announcement_id)
    assert total == sum(len(v) for v in ledger.values())
    assert any(r["channel"] == "sms" and "暴雨红色预警" in r["text"] for r in records)


def test_targeting_a_village_reaches_only_that_village(app, api):
    announcement_id = publish(api, areas=[VILLAGE_B])
    run_jobs(app)
    ledger = planned(app, announcement_id)
    people = {address for channel in ("sms", "voice", "wechat") for address, _ in ledger.get(channel, ())}
    assert people == {RESIDENTS["elderly"][0].phone, RESIDENTS["opted out of wechat"][0].phone}
    assert {address for address, _ in ledger["loudspeaker"]} == {"spk-b"}


def test_a_drill_goes_only_to_the_test_audience(app, api):
    announcement_id = publish(api, status="Exercise")
    run_jobs(app)
    ledger = planned(app, announcement_id)
    assert ledger["wechat"] == {(RESIDENTS["drill tester"][0].wechat_openid, "delivered")}
    assert {address for address, _ in ledger["loudspeaker"]} == {"spk-b"}
    assert "sms" not in ledger or not ledger["sms"]
    records, _ = outbox.read(providers.outbox_path(app), announcement_id=announcement_id)
    assert records and all("演练" in record["text"] for record in records)


def test_extreme_severity_overrides_opt_outs_but_never_calls_the_deaf(app, api):
    announcement_id = publish(api, severity="EXTREME")
    run_jobs(app)
    ledger = planned(app, announcement_id)
    wechat = {address for address, _ in ledger["wechat"]}
    voice = {address for address, _ in ledger["voice"]}
    assert RESIDENTS["opted out of wechat"][0].wechat_openid in wechat
    assert RESIDENTS["deaf"][0].phone not in voice
    assert RESIDENTS["young sms only"][0].phone in voice


def test_allowed_channels_limit_the_plan(app, api):
    announcement_id = publish(api, channels=["sms"])
    run_jobs(app)
    assert set(planned(app, announcement_id)) == {"sms"}


def test_a_job_run_twice_sends_once(app, api):
    announcement_id = publish(api)
    run_jobs(app)
    with app.app_context():
        before = outbox.read(providers.outbox_path(app))[1]
        queues.enqueue_batches(announcement_id, "sms", [0])
        queues.enqueue_batches(announcement_id, "voice", [0])
    run_jobs(app)
    assert outbox.read(providers.outbox_path(app))[1] == before


def test_reconciler_requeues_batches_lost_with_a_redis_flush(app, api):
    created = api("author").post("/api/v1/announcements", json=announcement())
    announcement_id = created.json["id"]
    api("approver").post(f"/api/v1/announcements/{announcement_id}/approve")
    with app.app_context():
        queues.queue("plan").empty()
        assert reconciler.reconcile()["plans_requeued"] == 1
        # Plan, then lose every delivery job before a worker sees it.
        queues.queue("plan").connection.flushdb()
        jobs.plan_announcement(announcement_id)
        queues.connection().flushdb()
        outcome = reconciler.reconcile()
    assert outcome["batches_requeued"] >= 4
    run_jobs(app)
    statuses = {status for rows in planned(app, announcement_id).values() for _, status in rows}
    assert statuses == {"delivered"}
    with app.app_context():
        assert reconciler.reconcile() == {"batches_requeued": 0, "sends_reclaimed": 0,
                                          "plans_requeued": 0, "imports_requeued": 0,
                                          "nudges_queued": 0}


def test_reconciler_retries_sends_stranded_by_a_dead_worker(app, api):
    announcement_id = publish(api, channels=["sms"])
    with app.app_context():
        queues.connection().flushdb()
        jobs.plan_announcement(announcement_id)
        queues.connection().flushdb()
    engine = app.extensions["engine"]
    with engine.begin() as conn:  # a worker claimed, then died: its lease ran out
        claimed = ledger.claim(conn, announcement_id, "sms", batch=0, owner="dead-worker",
                               lease=timedelta(seconds=-1))
    with app.app_context():
        outcome = reconciler.reconcile()
    assert outcome["sends_reclaimed"] == len(claimed) > 0
    run_jobs(app)
    assert {status for _, status in planned(app, announcement_id)["sms"]} == {"delivered"}
    status = api("approver").get(f"/api/v1/announcements/{announcement_id}").json
    assert status["possibly_sent_twice"] == len(claimed)


def plan_only(app, *also: str) -> None:
    """Run the plan job (and the named channels' jobs), leaving other channels queued."""
    with app.app_context():
        SimpleWorker([queues.queue(name) for name in ("plan", *also)],
                     connection=queues.connection()).work(burst=True)


def test_cancel_stops_pending_and_corrects_everyone_reached(app, api):
    announcement_id = publish(api, channels=["sms", "wechat"])
    plan_only(app, "sms")  # so WeChat is still pending when the cancel comes
    response = api("author").post(f"/api/v1/announcements/{announcement_id}/cancel",
                                  json={"correction": "此预警发布有误，请忽略。"})
    assert response.status_code == 200, response.json
    correction_id, update_id = response.json["correction_id"], response.json["update_id"]
    run_jobs(app)
    original = planned(app, announcement_id)
    assert {status for _, status in original["wechat"]} == {"cancelled"}
    assert {status for _, status in original["sms"]} == {"delivered"}
    correction = planned(app, correction_id)
    assert set(correction) == {"sms"}
    assert {a for a, _ in correction["sms"]} == {a for a, _ in original["sms"]}
    records, _ = outbox.read(providers.outbox_path(app), announcement_id=correction_id)
    # The fixed withdrawal wording goes out at once; what was typed waits for a second person.
    assert records and all("已撤销：“暴雨红色预警”" in r["text"] and "更正" in r["text"]
                           and "此预警发布有误" not in r["text"] for r in records)
    assert outbox.read(providers.outbox_path(app), announcement_id=update_id)[1] == 0
    assert api("author").get(f"/api/v1/announcements/{update_id}").json["state"] == \
        "awaiting_approval"
    status = api("author").get(f"/api/v1/announcements/{announcement_id}").json
    assert status["state"] == "cancelled" and status["superseded_by"] == [correction_id]


def test_unreached_lists_those_no_personal_channel_reached(app, api):
    announcement_id = publish(api, channels=["wechat", "loudspeaker"])
    run_jobs(app)
    body = api("approver").get(f"/api/v1/announcements/{announcement_id}/unreached").json
    names = {person["name"] for person in body["residents"]}
    # WeChat only: everyone without an openid (or opted out) is unreached; loudspeakers do not count.
    assert names == {"李娜", "张伟", "陈桂英", "杨洋"}
    assert body["total"] == 4
    csv_response = api("approver").get(f"/api/v1/announcements/{announcement_id}/unreached",
                                     headers={"Accept": "text/csv"})
    assert csv_response.mimetype == "text/csv"
    lines = csv_response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == "name,phone,area_code,section,tried" and len(lines) == 5


def test_updates_supersede_and_cancel_pending(app, api):
    first = api("author").post("/api/v1/announcements", json=announcement()).json
    api("approver").post(f"/api/v1/announcements/{first['id']}/approve")
    plan_only(app)
    update_body = announcement(msg_type="Update", references=first["identifier"],
                               body="雨势减弱，预计1小时后停止。")
    second = api("author").post("/api/v1/announcements", json=update_body)
    assert second.status_code == 201, second.json
    api("approver").post(f"/api/v1/announcements/{second.json['id']}/approve")
    run_jobs(app)
    status = api("author").get(f"/api/v1/announcements/{first['id']}").json
    assert status["state"] == "superseded"
    assert sum(n["cancelled"] for n in status["deliveries"].values()) > 0
    newer = api("author").get(f"/api/v1/announcements/{second.json['id']}").json
    assert newer["state"] == "done" and newer["reached_residents"] == len(RESIDENTS) - 1


def test_preview_counts_match_what_is_planned(app, api):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    preview = api("approver").get(f"/api/v1/announcements/{created['id']}/preview").json
    api("approver").post(f"/api/v1/announcements/{created['id']}/approve")
    run_jobs(app)
    ledger = planned(app, created["id"])
    assert preview["deliveries"] == {channel: len(rows) for channel, rows in ledger.items()}
    assert preview["residents"] == len(RESIDENTS) - 1
    assert preview["weak_segments"] == []  # every village's loudspeaker adds a second channel
    segments = preview["sms"]["segments_per_message"]
    assert preview["sms"]["encoding"] == "UCS-2" and segments == 1  # under 70 characters
    assert preview["cost"]["sms"] == round(preview["deliveries"]["sms"] * segments * 0.05, 2)
    assert preview["seconds_to_complete"]["overall"] > 0
    assert preview["escalation"] == {"fallback_order": ["sms", "voice", "wechat"],
                                     "tries_per_delivery": 3, "calls_per_resident": 3,
                                     "minutes_between_calls": 10.0,
                                     "vulnerable_must_confirm": False}


def test_preview_flags_segments_with_fewer_than_two_channels(app, api):
    created = api("author").post("/api/v1/announcements",
                                 json=announcement(channels=["sms", "voice", "wechat"])).json
    preview = api("approver").get(f"/api/v1/announcements/{created['id']}/preview").json
    weak = [(s["town"], s["age_band"], s["impairment"], s["fewer_than_two_channels"])
            for s in preview["weak_segments"]]
    # The four working-age residents without impairments get one channel each; the blind and
    # the elderly resident a call and an SMS to one phone: one independent path.
    assert weak == [("450702100", "18-39", "none", 4), ("450702100", "40-64", "visual", 1),
                    ("450702100", "65+", "none", 1)]


def test_vulnerable_residents_stay_unreached_until_they_confirm_a_severe_notice(app, api):
    announcement_id = publish(api, severity="severe", channels=["sms", "voice"])
    run_jobs(app)  # the outbox delivers, but nobody has pressed 1
    body = api("approver").get(f"/api/v1/announcements/{announcement_id}/unreached").json
    assert {p["name"] for p in body["residents"]} == {"张伟", "陈桂英"}  # blind, and aged 78


def test_every_action_is_in_the_audit_log(app, api):
    announcement_id = publish(api)
    run_jobs(app)
    api("author").post(f"/api/v1/announcements/{announcement_id}/cancel",
                       json={"correction": "更正内容"})
    with app.extensions["engine"].connect() as conn:
        entries = conn.execute(select(audit_log.c.actor, audit_log.c.action, audit_log.c.target)
                               .order_by(audit_log.c.id)).all()
    target = f"announcement:{announcement_id}"
    assert ("author", "create", target) in entries
    assert ("approver", "approve", target) in entries
    assert ("system", "send", target) in entries
    assert ("author", "cancel", target) in entries


# --- languages -----------------------------------------------------------------------

ENGLISH = {"language": "en", "headline": "Red rainstorm warning",
           "body": "Torrential rain is expected within 3 hours.",
           "instruction": "Move to a safe place."}
# Residents who read English: one reached by WeChat, one (blind) by a call and SMS.
ENGLISH_READERS = [person("Tom Lee", phone="+8613800000021", openid="o_english1", language="en"),
                   person("Ann Wu", phone="+8613800000022", visual=True, born=1970,
                          language="en")]
ENGLISH_ADDRESSES = {"o_english1", "+8613800000022"}


def add_residents(app, *profiles) -> None:
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, profiles)


def languages_planned(app, announcement_id) -> dict[tuple[str, str], str]:
    """(channel, address) -> the language of its delivery."""
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(deliveries.c.channel, deliveries.c.address,
                                   deliveries.c.language)
                            .where(deliveries.c.announcement_id == announcement_id)).all()
    return {(row.channel, row.address): row.language for row in rows}


def test_each_resident_gets_the_text_in_their_language_when_there_is_one(app, api):
    add_residents(app, *ENGLISH_READERS)
    bilingual = publish(api, translations=[ENGLISH])
    chinese_only = publish(api)
    plan_only(app)
    languages = languages_planned(app, bilingual)
    assert {address for (_, address), language in languages.items() if language == "en"} == \
        ENGLISH_ADDRESSES
    assert {language for (channel, _), language in languages.items()
            if channel == "loudspeaker"} == {"zh"}
    assert set(languages_planned(app, chinese_only).values()) == {"zh"}


def test_the_outbox_carries_each_delivery_in_its_own_language(app, api):
    add_residents(app, *ENGLISH_READERS)
    announcement_id = publish(api, translations=[ENGLISH])
    run_jobs(app)
    records, total = outbox.read(providers.outbox_path(app), announcement_id=announcement_id)
    english = [r for r in records if r["address"] in ENGLISH_ADDRESSES]
    chinese = [r for r in records if r["address"] not in ENGLISH_ADDRESSES]
    assert {r["channel"] for r in english} == {"wechat", "sms", "voice"}
    assert all(r["language"] == "en" and "Red rainstorm" in r["text"]
               and "暴雨红色预警" not in r["text"] for r in english)
    assert chinese and all(r["language"] == "zh" and "暴雨红色预警" in r["text"]
                           and "Red rainstorm" not in r["text"] for r in chinese)
    assert total == len(records) == len(english) + len(chinese)


def test_a_correction_reaches_each_resident_in_the_language_they_were_reached_in(app, api):
    add_residents(app, *ENGLISH_READERS)
    announcement_id = publish(api, translations=[ENGLISH], channels=["sms"])
    run_jobs(app)
    correction_id = api("author").post(f"/api/v1/announcements/{announcement_id}/cancel"
                                       ).json["correction_id"]
    assert api("author").get(f"/api/v1/announcements/{correction_id}").json["languages"] == [
        "zh", "en"]
    run_jobs(app)
    records, _ = outbox.read(providers.outbox_path(app), announcement_id=correction_id)
    by_address = {r["address"]: r for r in records}
    for address in ("+8613800000021", "+8613800000022"):
        assert by_address.pop(address)["language"] == "en"
    assert by_address and {r["language"] for r in by_address.values()} == {"zh"}
    english = [r for r in records if r["language"] == "en"]
    assert english and all("Withdrawn: the notice “Red rainstorm warning”" in r["text"]
                           for r in english)
    assert all("已撤销：“暴雨红色预警”" in r["text"] for r in by_address.values())


def test_a_plan_interrupted_by_a_crash_resumes_without_duplicates(app, api, monkeypatch):
    from gateway.delivery import planner

    created = api("author").post("/api/v1/announcements", json=announcement()).json
    api("approver").post(f"/api/v1/announcements/{created['id']}/approve")
    monkeypatch.setattr(planner, "CHUNK", 2)
    real_commit, calls = planner._write_and_queue, []

    def crash_after_two_chunks(*args):
        calls.append(args)
        if len(calls) > 2:  # two chunks committed and queued, then the worker dies
            raise SystemExit("worker killed")
        real_commit(*args)

    monkeypatch.setattr(planner, "_write_and_queue", crash_after_two_chunks)
    with app.app_context(), pytest.raises(SystemExit):
        jobs.plan_announcement(created["id"])
    monkeypatch.setattr(planner, "_write_and_queue", real_commit)
    with app.app_context():
        queues.queue("plan").empty()  # the plan job went down with the worker
        assert reconciler.reconcile()["plans_requeued"] == 1
    run_jobs(app)
    ledger_rows = planned(app, created["id"])
    for channel in ("sms", "voice", "wechat"):
        assert {address for address, _ in ledger_rows[channel]} == expected_addresses(channel)
    status = api("author").get(f"/api/v1/announcements/{created['id']}").json
    assert status["state"] == "done"
    assert status["personal_deliveries"] == sum(len(ledger_rows[c]) for c in ("sms", "voice", "wechat"))
