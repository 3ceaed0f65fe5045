"""The ledger's rules: statuses only move forward, claims are exclusive, counts stay true."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from gateway.store import ledger
from gateway.store.schema import deliveries

#: A worker holding claimed rows for a minute.
HOLDER = {"owner": "worker-1", "lease": timedelta(minutes=1)}


@pytest.mark.parametrize("old, new, allowed", [
    ("planned", "queued", True), ("queued", "sending", True), ("sending", "sent", True),
    ("sent", "delivered", True), ("delivered", "confirmed", True), ("sent", "confirmed", True),
    ("delivered", "sent", False), ("confirmed", "delivered", False), ("sent", "sent", False),
    ("sent", "failed", True), ("delivered", "failed", False), ("failed", "delivered", False),
    ("queued", "cancelled", True), ("sending", "cancelled", False), ("sent", "cancelled", False),
    ("cancelled", "queued", False),
])
def test_statuses_move_forward_only(old, new, allowed):
    assert ledger.may_move(old, new) is allowed


def rows(n, channel="sms", batch=0):
    return [{"channel": channel, "recipient_id": i, "address": f"+86138000000{i:02d}",
             "language": "zh", "batch": batch} for i in range(n)]


@pytest.mark.integration
def test_a_claim_is_taken_once_and_counts_follow(app):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        ledger.ensure_counts(conn, 1, ["sms"])
        ledger.add(conn, 1, rows(5))
        first = ledger.claim(conn, 1, "sms", **HOLDER, batch=0)
        second = ledger.claim(conn, 1, "sms", **HOLDER, batch=0)
        assert len(first) == 5 and second == []
        ledger.settle(conn, 1, "sms", "sent", [(r.id, f"SM{r.id}", None) for r in first[:3]])
        ledger.settle(conn, 1, "sms", "failed", [(first[3].id, None, "21211 invalid number")])
        ledger.reschedule(conn, 1, "sms", [first[4].id], "timeout")
        assert ledger.transition(conn, first[0].id, "delivered")
        assert not ledger.transition(conn, first[0].id, "sent")  # late callback
        assert not ledger.transition(conn, 999999, "delivered")  # unknown id
        counts = ledger.counts(conn, 1)["sms"]
        actual = dict(conn.execute(select(deliveries.c.status, func.count())
                                   .group_by(deliveries.c.status)).all())
    assert counts == {"planned": 1, "queued": 0, "sending": 0, "sent": 2, "delivered": 1,
                      "confirmed": 0, "failed": 1, "cancelled": 0}
    assert {s: n for s, n in counts.items() if n} == actual


@pytest.mark.integration
@pytest.mark.parametrize("block", [1, 3, 5000])
def test_written_rows_read_back_exactly_whatever_their_text(app, monkeypatch, block):
    """PostgreSQL's rows go as COPY text made by the ledger: characters COPY gives a meaning
    (tab, line break, backslash, the null marker) and the word None must come back as written
    in blocks that mix them with plain rows."""
    monkeypatch.setattr(ledger.rows, "COPY_BLOCK", block)
    addresses = ["+8613800000001", "a\tb", "line\nbreak", "back\\slash\\N", "\\N",
                 "None", "cr\rhere", "openid-Ωé", "+8613800000002"]
    written = [("wechat", i, address, "zh-Hant" if i % 2 else "zh", i // 4)
               for i, address in enumerate(addresses)]
    with app.extensions["engine"].begin() as conn:
        ledger.write(conn, 7, iter(written))
        read = conn.execute(select(deliveries.c.channel, deliveries.c.recipient_id,
                                   deliveries.c.address, deliveries.c.language,
                                   deliveries.c.batch, deliveries.c.status, deliveries.c.attempts)
                            .where(deliveries.c.announcement_id == 7)
                            .order_by(deliveries.c.recipient_id)).all()
    assert [tuple(row) for row in read] == [(*row, "queued", 0) for row in written]


@pytest.mark.integration
def test_a_callback_before_the_job_records_sent_is_kept(app):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        ledger.ensure_counts(conn, 2, ["sms"])
        ledger.add(conn, 2, rows(1))
        claimed = ledger.claim(conn, 2, "sms", **HOLDER, batch=0)
        assert ledger.transition(conn, claimed[0].id, "delivered")
        assert ledger.settle(conn, 2, "sms", "sent", [(claimed[0].id, "SM1", None)]) == 0
        row = conn.execute(select(deliveries)).one()
        assert (row.status, row.provider_id) == ("delivered", "SM1")
        assert ledger.counts(conn, 2)["sms"]["delivered"] == 1
        assert ledger.counts(conn, 2)["sms"]["sending"] == 0


@pytest.mark.integration
def test_the_job_recording_sent_late_keeps_the_callbacks_time_and_error(app, monkeypatch):
    """When the provider's word came first, the row says when it was delivered (or why it failed),
    not when the job got round to writing its own result down."""
    engine = app.extensions["engine"]
    ticks = itertools.count()
    for module in (ledger.moves, ledger.leases, ledger.totals):  # ten seconds a step
        monkeypatch.setattr(module, "utcnow",
                            lambda: datetime(2026, 12, 4, 8) + timedelta(seconds=10 * next(ticks)))
    with engine.begin() as conn:
        ledger.ensure_counts(conn, 6, ["sms"])
        ledger.add(conn, 6, rows(2))
        delivered, failed = (row.id for row in ledger.claim(conn, 6, "sms", **HOLDER, batch=0))
        assert ledger.transition(conn, delivered, "delivered", provider_id="SM1")
        assert ledger.transition(conn, failed, "failed", error="30003 unreachable")
        told = dict(conn.execute(select(deliveries.c.id, deliveries.c.updated_at)).all())
        assert ledger.settle(conn, 6, "sms", "sent", [(delivered, "SM1", None),
                                                      (failed, "SM2", None)]) == 0
        after = {row.id: row for row in conn.execute(select(deliveries))}
    assert {i: row.updated_at for i, row in after.items()} == told
    assert (after[delivered].status, after[delivered].last_error) == ("delivered", None)
    assert (after[failed].status, after[failed].provider_id, after[failed].last_error) == (
        "failed", "SM2", "30003 unreachable")


@pytest.mark.integration
def test_cancel_pending_leaves_what_is_in_flight(app):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        ledger.ensure_counts(conn, 3, ["sms"])
        ledger.add(conn, 3, rows(4))
        ledger.claim(conn, 3, "sms", **HOLDER, ids=[r.id for r in conn.execute(select(deliveries.c.id)
                                                                    .limit(1))])
        assert ledger.cancel_pending(conn, 3, "cancelled by author") == 3
        assert ledger.counts(conn, 3)["sms"]["sending"] == 1


@pytest.mark.integration
def test_many_deliveries_advance_together_forward_only_and_counts_follow(app):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        ledger.ensure_counts(conn, 4, ["sms"])
        ledger.add(conn, 4, rows(4))
        claimed = ledger.claim(conn, 4, "sms", **HOLDER, batch=0)
        ledger.settle(conn, 4, "sms", "sent", [(r.id, f"SM{r.id}", None) for r in claimed])
        first, second, third, fourth = (row.id for row in claimed)
        assert ledger.transition(conn, fourth, "confirmed")
        moved = ledger.advance(conn, {first: "delivered", second: "confirmed",
                                      third: "sent",  # not forward: stays
                                      fourth: "delivered",  # already further: stays
                                      999999: "delivered"})  # unknown: ignored
        assert moved == 2
        by_id = dict(conn.execute(select(deliveries.c.id, deliveries.c.status)).all())
        counts = ledger.counts(conn, 4)["sms"]
        reached = ledger.reached_count(conn, 4)
    assert by_id == {first: "delivered", second: "confirmed", third: "sent", fourth: "confirmed"}
    assert {s: n for s, n in counts.items() if n} == {"sent": 1, "delivered": 1, "confirmed": 2}
    assert reached == 3


@pytest.mark.integration
def test_a_lease_is_renewed_and_held_only_by_its_holder_and_only_while_sending(app):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        ledger.ensure_counts(conn, 5, ["sms"])
        ledger.add(conn, 5, rows(3))
        first, second, third = (row.id for row in ledger.claim(conn, 5, "sms", **HOLDER, batch=0))
        ledger.settle(conn, 5, "sms", "sent", [(third, "SM3", None)])
        assert ledger.renew(conn, [first, second, third], "worker-1", timedelta(minutes=5)) == {
            first, second}
        assert ledger.renew(conn, [first], "worker-2", timedelta(minutes=5)) == set()
        assert ledger.held_by(conn, [first, second, third], "worker-1") == {first, second}
        assert ledger.held_by(conn, [first], "worker-2") == set()
        assert ledger.release(conn, [second], "worker-2") == 0
        assert ledger.release(conn, [second], "worker-1") == 1
        assert ledger.renew(conn, [second], "worker-1", timedelta(minutes=5)) == set()


@pytest.mark.integration
def test_only_expired_leases_of_workers_that_are_gone_are_taken_back_and_counted(app):
    engine = app.extensions["engine"]
    expired = {"lease": timedelta(seconds=-1)}
    with engine.begin() as conn:
        ledger.ensure_counts(conn, 6, ["sms"])
        ledger.add(conn, 6, rows(4))
        ids = [r.id for r in conn.execute(select(deliveries.c.id).order_by(deliveries.c.id))]
        ledger.claim(conn, 6, "sms", owner="alive", ids=ids[:1], **expired)
        ledger.claim(conn, 6, "sms", owner="dead", ids=ids[1:2], **expired)
        ledger.claim(conn, 6, "sms", owner="dead", ids=ids[2:3], lease=timedelta(minutes=1))
        ledger.claim(conn, 6, "sms", owner="released", ids=ids[3:], **expired)
        ledger.release(conn, ids[3:], "released")
        asked = []
        taken = ledger.reclaim_abandoned(conn, lambda owner: asked.append(owner) or owner == "alive")
        assert ledger.reclaim_abandoned(conn, lambda owner: owner == "alive") == {}
        statuses = dict(conn.execute(select(deliveries.c.id, deliveries.c.status)).all())
        unknown = dict(conn.execute(select(deliveries.c.id, deliveries.c.unknown_outcomes)).all())
        assert ledger.resent_count(conn, 6) == 2
        assert ledger.counts(conn, 6)["sms"]["planned"] == 2
    assert taken == {(6, "sms"): 2}
    assert sorted(asked) == ["alive", "dead"]  # a released row needs no question, nor a live lease
    assert [statuses[i] for i in ids] == ["sending", "planned", "sending", "planned"]
    assert [unknown[i] for i in ids] == [0, 1, 0, 1]
