"""The ledger's rules: statuses only move forward, claims are exclusive, counts stay true."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway.store import ledger
from gateway.store.schema import deliveries


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
        first = ledger.claim(conn, 1, "sms", batch=0)
        second = ledger.claim(conn, 1, "sms", batch=0)
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
def test_a_callback_before_the_job_records_sent_is_kept(app):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        ledger.ensure_counts(conn, 2, ["sms"])
        ledger.add(conn, 2, rows(1))
        claimed = ledger.claim(conn, 2, "sms", batch=0)
        assert ledger.transition(conn, claimed[0].id, "delivered")
        assert ledger.settle(conn, 2, "sms", "sent", [(claimed[0].id, "SM1", None)]) == 0
        row = conn.execute(select(deliveries)).one()
        assert (row.status, row.provider_id) == ("delivered", "SM1")
        assert ledger.counts(conn, 2)["sms"]["delivered"] == 1
        assert ledger.counts(conn, 2)["sms"]["sending"] == 0


@pytest.mark.integration
def test_cancel_pending_leaves_what_is_in_flight(app):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        ledger.ensure_counts(conn, 3, ["sms"])
        ledger.add(conn, 3, rows(4))
        ledger.claim(conn, 3, "sms", ids=[r.id for r in conn.execute(select(deliveries.c.id)
                                                                    .limit(1))])
        assert ledger.cancel_pending(conn, 3, "cancelled by author") == 3
        assert ledger.counts(conn, 3)["sms"]["sending"] == 1


@pytest.mark.integration
def test_many_deliveries_advance_together_forward_only_and_counts_follow(app):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        ledger.ensure_counts(conn, 4, ["sms"])
        ledger.add(conn, 4, rows(4))
        claimed = ledger.claim(conn, 4, "sms", batch=0)
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
