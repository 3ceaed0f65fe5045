"""Retention (issue 20, item 6): RETENTION_DAYS after a notice finished, its delivery details
go — addresses, provider ids and errors, which resident each delivery and reach was, the SMS
replies — and every number the status API, the progress history and the disclosure report
gave stays the same."""
from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from gateway.delivery import providers, reports, retention
from gateway.store.db import utcnow
from gateway.store import hotline, ledger
from gateway.store.schema import (announcements, audit_log, deliveries, grid_visits,
                                  hotline_calls, inbound_messages, reached, residents, users)
from tests.gateway.console.conftest import login
from tests.gateway.delivery.conftest import by_address, hand_over, planned, reach, row_of
from tests.gateway.delivery.test_disclosure import PEOPLE, TOWN, openid, phone, segments_county  # noqa: F401

pytestmark = pytest.mark.integration


def finished(app, announcement_id: int, days_ago: float) -> None:
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                     .values(state="done", finished_at=utcnow() - timedelta(days=days_ago)))


def sent_and_answered(app) -> int:
    """A severe notice: some reached, two confirmed, one failed, one SMS reply kept."""
    announcement_id = planned(app, areas=[TOWN], severity="severe")
    rows = by_address(app, announcement_id)
    firsts = [rows[key].id for key in (("wechat", openid("young none")),
                                       ("sms", phone("deaf phone speaker")),
                                       ("sms", phone("blind speaker")),
                                       ("voice", phone("blind none")),
                                       ("sms", phone("elderly speaker")))]
    hand_over(app, announcement_id, firsts + [rows[("loudspeaker", "spk-pilot")].id])
    hand_over(app, announcement_id, [rows[("sms", phone("deaf phone none"))].id], "failed")
    reach(app, firsts[:3])
    reach(app, firsts[3:], "confirmed")
    reach(app, [rows[("loudspeaker", "spk-pilot")].id], "confirmed")
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(inbound_messages).values(
            at=utcnow(), channel="sms", address=phone("elderly speaker"), intent="confirm",
            announcement_id=announcement_id, body="1 收到"))
        hotline.record_heard(conn, "CA0123456789abcdef", announcement_id, TOWN,
                             conn.execute(select(residents.c.id)).first().id)
        conn.execute(insert(grid_visits).values(
            tap_id=f"tap-{announcement_id}", announcement_id=announcement_id,
            resident_id=conn.execute(select(residents.c.id)).first().id,
            user_id=conn.execute(select(users.c.id)).first().id, outcome="not_home",
            note="邻居说去了广州", at=utcnow()))
        rest = [row.id for row in conn.execute(select(deliveries.c.id).where(
            deliveries.c.announcement_id == announcement_id, deliveries.c.status == "queued"))]
    hand_over(app, announcement_id, rest)  # sent; no delivery report came
    return announcement_id


def figures(app, api, announcement_id: int) -> tuple:
    status = api("approver").get(f"/api/v1/announcements/{announcement_id}").get_json()
    report = api("approver").get(f"/api/v1/announcements/{announcement_id}/disclosure").get_json()
    with app.app_context(), app.extensions["engine"].connect() as conn:
        history = reports.history(conn, row_of(conn, announcement_id))
    return status, report, history


def personal_traces(app, announcement_id: int) -> dict:
    resident_ids = {row.id for row in _all(app, select(residents.c.id))}
    rows = _all(app, select(deliveries).where(deliveries.c.announcement_id == announcement_id))
    return {
        "addresses": sorted({row.address for row in rows if row.address}),
        "provider ids or errors": [row.id for row in rows if row.provider_id or row.last_error],
        "residents of deliveries": sorted({row.recipient_id for row in rows
                                           if row.channel != "loudspeaker"} & resident_ids),
        "residents reached": sorted({row.recipient_id for row in _all(
            app, select(reached).where(reached.c.announcement_id == announcement_id))}
            & resident_ids),
        "replies": len(_all(app, select(inbound_messages)
                            .where(inbound_messages.c.announcement_id == announcement_id))),
        "grid visits": len(_all(app, select(grid_visits)
                                .where(grid_visits.c.announcement_id == announcement_id))),
        "hotline callers": [row.call_sid for row in _all(app, select(hotline_calls).where(
            hotline_calls.c.announcement_id == announcement_id))
            if row.resident_id or row.call_sid.startswith("CA")],
    }


def _all(app, query) -> list:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(query).all()


def test_details_go_after_the_retention_days_and_every_figure_stays(app, segments_county, api):
    old = sent_and_answered(app)
    finished(app, old, days_ago=31)
    recent = sent_and_answered(app)
    finished(app, recent, days_ago=29)
    before = figures(app, api, old)
    assert before[0]["reached_residents"] == 5 and before[0]["confirmed_residents"] == 2
    assert before[0]["unconfirmed_residents"] == before[1]["total"]["unconfirmed"] == 1
    assert before[0]["not_reached_residents"] == before[1]["total"]["not_reached"] == 4
    assert all(personal_traces(app, old).values())  # there was something to delete

    app.config["RETENTION_DAYS"] = 30
    with app.app_context():
        assert retention.run() == {"announcements": 1, "deliveries": 15, "replies": 1, "outbox": 0}
        assert retention.run() == {"announcements": 0, "deliveries": 0, "replies": 0, "outbox": 0}

    assert figures(app, api, old) == before
    with app.extensions["engine"].begin() as conn:
        assert hotline.listeners(conn, old) == 1  # still counted, no longer named
        still_sent = conn.execute(select(deliveries.c.id).where(
            deliveries.c.announcement_id == old, deliveries.c.status == "sent")).first().id
        # A provider's callback arriving this late moves nothing.
        assert not ledger.transition(conn, still_sent, "delivered", provider_id="SM-late",
                                     provider_must_match=True)
    assert figures(app, api, old) == before
    assert not any(personal_traces(app, old).values())
    assert all(personal_traces(app, recent).values())  # 29 days: kept
    kept = _all(app, select(deliveries.c.channel, deliveries.c.status, deliveries.c.recipient_id)
                .where(deliveries.c.announcement_id == old))
    assert all(row.recipient_id < 0 for row in kept if row.channel != "loudspeaker")
    assert len({row.recipient_id for row in kept}) == len(kept)
    [entry] = _all(app, select(audit_log).where(audit_log.c.action == "retention"))
    assert (entry.actor, entry.target) == ("retention", f"announcement:{old}")
    assert '"days": 30' in entry.detail and '"deliveries": 15' in entry.detail

    gone = api("approver").get(f"/api/v1/announcements/{old}/unreached")
    assert gone.status_code == 410 and "RETENTION_DAYS" in gone.get_json()["error"]
    refused = api("approver").post(f"/api/v1/announcements/{old}/cancel")
    assert refused.status_code == 409 and "new notice" in refused.get_json()["error"]
    console = app.test_client()
    login(console, "approver")
    for path in (f"/announcements/{old}/unreached", f"/announcements/{old}/unreached.csv"):
        page = console.get(path)
        assert page.status_code == 410 and "投递明细已在保存期限" in page.get_data(as_text=True)


def test_off_by_default_and_never_before_a_notice_finished(app, segments_county):
    done = sent_and_answered(app)
    finished(app, done, days_ago=400)
    sending = planned(app, areas=[TOWN])  # its deliveries still queued
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(announcements).where(announcements.c.id == sending)
                     .values(state="sending", finished_at=utcnow() - timedelta(days=400)))
    with app.app_context():
        assert retention.run()["announcements"] == 0  # RETENTION_DAYS=0: keep
        app.config["RETENTION_DAYS"] = 1
        assert retention.run()["announcements"] == 1  # the done one only
    assert all(personal_traces(app, sending)["addresses"])


def test_the_reconciler_queues_a_pass_once_an_hour(app):
    from gateway.delivery import queues, reconciler
    with app.app_context():
        reconciler.reconcile()
        assert queues.queue(queues.IMPORT_QUEUE).count == 0  # off
        app.config["RETENTION_DAYS"] = 30
        reconciler.reconcile()
        reconciler.reconcile()
        [job] = queues.queue(queues.IMPORT_QUEUE).jobs
        assert job.func_name == "gateway.delivery.retention.run"
        assert 3500 < queues.connection().ttl(retention.QUEUED_MARK) <= 3600


def test_the_command_runs_a_pass_and_says_what_it_deleted(app, segments_county):
    old = sent_and_answered(app)
    finished(app, old, days_ago=8)
    said = app.test_cli_runner().invoke(args=["retention"])
    assert said.exit_code == 0 and "RETENTION_DAYS is 0" in said.output
    app.config["RETENTION_DAYS"] = 7
    said = app.test_cli_runner().invoke(args=["retention"])
    assert said.exit_code == 0, said.output
    assert said.output.strip().endswith("finished more than 7 days ago: 1 notices, 15 deliveries "
                                        "and 1 SMS replies anonymised or deleted; 0 outbox "
                                        "records older than that deleted")
    assert not any(personal_traces(app, old).values())


def outbox_line(days_ago: float, address: str) -> str:
    made = (utcnow() - timedelta(days=days_ago)).isoformat(timespec="milliseconds")
    return json.dumps({"time": made, "channel": "sms", "delivery_id": 1, "announcement_id": 1,
                       "address": address, "language": "zh", "text": "【县政府】验证码 123456"},
                      ensure_ascii=False) + "\n"


def test_outbox_records_older_than_the_retention_days_go_and_it_is_audited(app):
    """With no provider the outbox holds residents' phones, texts and codes: kept no longer."""
    path = providers.outbox_path(app)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(outbox_line(40, "+8613900000040") + "not a record\n"
                     + outbox_line(29, "+8613900000029"))
    app.config["RETENTION_DAYS"] = 30
    with app.app_context():
        assert retention.run()["outbox"] == 1
        assert retention.run()["outbox"] == 0
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert lines[0] == "not a record" and "+8613900000029" in lines[1] and len(lines) == 2
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with app.extensions["engine"].connect() as conn:
        (entry,) = conn.execute(select(audit_log).where(audit_log.c.target == "outbox")).all()
    assert (entry.actor, entry.action, json.loads(entry.detail)) == (
        "retention", "retention", {"days": 30, "records": 1})
