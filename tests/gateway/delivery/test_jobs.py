"""gateway/delivery/jobs.py: one batch of one channel, sent through a scripted provider.

A claimed row is sent once; a transient error puts it back with backoff until the severity's
retry budget runs out; a permanent one fails it and queues the fallback; a paused channel
holds its rows without counting the try; dead or expired announcements send nothing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from channels.base import ChannelError
from gateway.delivery import escalation, jobs, queues
from gateway.store.db import utcnow
from gateway.store.ledger import erasure
from gateway.store.schema import announcements, deliveries, residents
from tests.gateway.conftest import RESIDENTS, VILLAGE_A
from tests.gateway.delivery.conftest import (Scripted, by_address, ledger_rows, planned,
                                             queued_batches, row_of, scheduled_batches,
                                             use_provider)

pytestmark = pytest.mark.integration

BLIND = RESIDENTS["blind"][0].phone
SMS_ONLY = RESIDENTS["young sms only"][0].phone
# The residents of village A reached by SMS when SMS is the only channel, in id order.
VILLAGE_A_SMS = [RESIDENTS[name][0].phone for name in ("young follower", "young sms only", "blind",
                                                       "deaf", "drill tester")]


def deliver(app, announcement_id, channel="sms", batch=0) -> int:
    with app.app_context():
        return jobs.deliver_batch(announcement_id, channel, batch)


def sms(app, announcement_id, address):
    return by_address(app, announcement_id)[("sms", address)]


def retry_in(app, channel="sms") -> float:
    """Seconds until the latest retry rq's scheduler holds for the channel."""
    with app.app_context():
        registry = queues.queue(channel).scheduled_job_registry
        latest = max(registry.get_scheduled_time(job_id) for job_id in registry.get_job_ids())
    return (latest - datetime.now(timezone.utc)).total_seconds()


def change(app, announcement_id, **values) -> None:
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                     .values(**values))


def state(app, announcement_id) -> str:
    with app.extensions["engine"].connect() as conn:
        return row_of(conn, announcement_id).state


def test_a_second_run_of_the_same_batch_sends_nothing(app, county):
    announcement_id = planned(app, channels=["sms"], areas=[VILLAGE_A])
    provider = use_provider(app, "sms", Scripted())
    assert deliver(app, announcement_id) == 5
    assert deliver(app, announcement_id) == 0
    assert provider.addresses() == VILLAGE_A_SMS
    assert {(row.status, row.attempts, row.provider_id) for row in ledger_rows(app, announcement_id)} \
        == {("sent", 1, f"P{row.id}") for row in ledger_rows(app, announcement_id)}
    assert state(app, announcement_id) == "done"  # nothing left pending


def test_a_transient_error_puts_the_row_back_with_growing_waits(app, county):
    app.config["RETRY_DELAY_SECONDS"] = 200
    announcement_id = planned(app, channels=["sms"], areas=[VILLAGE_A])
    provider = use_provider(app, "sms", Scripted({BLIND: ChannelError("timeout")}))
    assert deliver(app, announcement_id) == 5
    row = sms(app, announcement_id, BLIND)
    assert (row.status, row.attempts, row.last_error) == ("planned", 1, "timeout")
    assert (announcement_id, 0) in scheduled_batches(app, "sms")
    assert 195 < retry_in(app) <= 200
    assert state(app, announcement_id) == "sending"
    assert deliver(app, announcement_id) == 1  # the retry claims only what was put back
    assert sms(app, announcement_id, BLIND).attempts == 2
    assert 295 < retry_in(app) <= jobs.MAX_RETRY_DELAY_SECONDS  # 400, capped
    provider.answers[BLIND] = ChannelError("slow down", retry_after=900)
    assert deliver(app, announcement_id) == 1
    assert 895 < retry_in(app) <= 900  # the provider's own wait beats the cap
    provider.answers[BLIND] = "sent"
    assert deliver(app, announcement_id) == 1
    assert (sms(app, announcement_id, BLIND).status, provider.addresses().count(BLIND)) == ("sent", 4)


def test_a_transient_error_past_the_retry_budget_fails_and_escalates(app, county):
    announcement_id = planned(app, channels=["sms", "voice"], areas=[VILLAGE_A])
    budget = app.config["RETRY_BUDGET_MINUTES"]["moderate"]
    change(app, announcement_id, sent=utcnow() - timedelta(minutes=budget, seconds=1))
    use_provider(app, "sms", Scripted({SMS_ONLY: ChannelError("timeout")}))
    deliver(app, announcement_id)
    row = sms(app, announcement_id, SMS_ONLY)
    assert (row.status, row.last_error) == ("failed", "gave up after 1 tries: timeout")
    assert by_address(app, announcement_id)[("voice", SMS_ONLY)].status == "queued"
    assert scheduled_batches(app, "sms") == set()


def test_the_retry_deadline_is_the_budget_or_the_expiry_whichever_is_first(app):
    sent = datetime(2026, 7, 1, 8, 0, tzinfo=timezone.utc)

    def deadline(severity, expires=None):
        notice = type("Notice", (), {"severity": severity, "sent": sent, "created_at": sent,
                                     "expires": expires})
        with app.app_context():
            return jobs.retry_deadline(notice)

    assert deadline("extreme") == sent + timedelta(minutes=120)
    assert deadline("minor") == sent + timedelta(minutes=30)
    assert deadline("unknown") == sent + timedelta(minutes=30)
    assert deadline("extreme", sent + timedelta(minutes=45)) == sent + timedelta(minutes=45)


def test_a_permanent_error_fails_at_once_and_queues_the_fallback(app, county):
    announcement_id = planned(app, channels=["sms", "voice"], areas=[VILLAGE_A])
    use_provider(app, "sms", Scripted({SMS_ONLY: ChannelError(
        "not a mobile number", permanent=True, code="21614")}))
    deliver(app, announcement_id)
    row = sms(app, announcement_id, SMS_ONLY)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1,
                                                          "[21614] not a mobile number")
    call = by_address(app, announcement_id)[("voice", SMS_ONLY)]
    assert (call.status, call.batch) == ("queued", escalation.batch_for(0))
    assert (announcement_id, escalation.batch_for(0)) in queued_batches(app, "voice")
    assert scheduled_batches(app, "sms") == set()


def test_an_invalid_number_is_marked_and_no_channel_uses_it_again(app, county):
    announcement_id = planned(app, channels=["sms", "voice"], areas=[VILLAGE_A])
    dead = ChannelError("invalid phone number", code="21211", address_invalid=True)
    use_provider(app, "sms", Scripted({SMS_ONLY: dead, BLIND: dead}))
    deliver(app, announcement_id)
    rows = by_address(app, announcement_id)
    assert rows[("sms", SMS_ONLY)].status == "failed"
    assert ("voice", SMS_ONLY) not in rows  # no call to the number the SMS found dead
    # The blind resident's call was planned beside the SMS: it fails untried.
    call = rows[("voice", BLIND)]
    assert (call.status, call.attempts) == ("failed", 0)
    assert call.last_error.startswith("not sent: the number is invalid ([21211]")
    assert queued_batches(app, "voice") == {(announcement_id, 0)}  # the original batch only
    with app.extensions["engine"].connect() as conn:
        marks = dict(conn.execute(select(residents.c.phone, residents.c.phone_invalid)
                                  .where(residents.c.phone.in_([SMS_ONLY, BLIND]))).all())
    assert marks == {SMS_ONLY: "[21211] invalid phone number",
                     BLIND: "[21211] invalid phone number"}


def test_a_paused_channel_claims_nothing_and_waits_out_the_pause(app, county):
    announcement_id = planned(app, channels=["sms"], areas=[VILLAGE_A])
    provider = use_provider(app, "sms", Scripted())
    with app.app_context():
        queues.pause_channel("sms", 120, "daily quota used")
    assert deliver(app, announcement_id) == 0
    assert provider.sent == []
    assert {(row.status, row.attempts) for row in ledger_rows(app, announcement_id)} == \
        {("queued", 0)}
    assert 115 < retry_in(app) <= 120


def test_a_pause_mid_batch_keeps_what_was_sent_and_holds_the_rest_untried(app, county,
                                                                          monkeypatch):
    monkeypatch.setattr(jobs, "FLUSH_EVERY", 2)
    announcement_id = planned(app, channels=["sms"], areas=[VILLAGE_A])
    quota = ChannelError("daily quota used", code="45009", pauses_channel=True, retry_after=600)
    provider = use_provider(app, "sms", Scripted({BLIND: quota}))
    assert deliver(app, announcement_id) == 5
    assert provider.addresses() == VILLAGE_A_SMS[:3]  # the rest never reached the provider
    after = {row.address: (row.status, row.attempts) for row in ledger_rows(app, announcement_id)}
    assert after == {**{a: ("sent", 1) for a in VILLAGE_A_SMS[:2]},
                     **{a: ("planned", 0) for a in VILLAGE_A_SMS[2:]}}
    assert sms(app, announcement_id, BLIND).last_error == "[45009] daily quota used"
    with app.app_context():
        seconds, reason = queues.channel_pause("sms")
    assert reason == "[45009] daily quota used" and 595 < seconds <= 600
    assert 595 < retry_in(app) <= 600


class TakenAwayWhileSending(Scripted):
    """On its first send, the reconciler takes one row of the batch back from the job (its
    worker looked dead) and a resident of another row erases their record."""

    def __init__(self, app, taken_back: str, erased: str):
        super().__init__()
        self.app, self.taken_back, self.erased = app, taken_back, erased

    def send(self, message):
        if not self.sent:
            with self.app.extensions["engine"].begin() as conn:
                conn.execute(update(deliveries).where(deliveries.c.address == self.taken_back)
                             .values(status="planned", lease_owner=None))
                erased = conn.execute(select(deliveries.c.recipient_id)
                                      .where(deliveries.c.address == self.erased)).scalar_one()
                erasure.anonymise_recipient(conn, erased)
        return super().send(message)


def test_rows_taken_from_the_job_mid_batch_are_not_sent(app, county, monkeypatch):
    monkeypatch.setattr(jobs, "FLUSH_EVERY", 2)
    announcement_id = planned(app, channels=["sms"], areas=[VILLAGE_A])
    first, second, taken_back, fourth, erased = VILLAGE_A_SMS
    provider = use_provider(app, "sms", TakenAwayWhileSending(app, taken_back, erased))
    assert deliver(app, announcement_id) == 5
    assert provider.addresses() == [first, second, fourth]
    assert sms(app, announcement_id, taken_back).status == "planned"  # the reconciler's now


@pytest.mark.parametrize("gone", ["cancelled", "superseded"])
def test_a_batch_of_a_withdrawn_announcement_is_cancelled_unsent(app, county, gone):
    announcement_id = planned(app, channels=["sms"], areas=[VILLAGE_A])
    change(app, announcement_id, state=gone)  # rows an escalation wrote as it was withdrawn
    provider = use_provider(app, "sms", Scripted())
    assert deliver(app, announcement_id) == 0
    assert provider.sent == []
    assert {(row.status, row.last_error) for row in ledger_rows(app, announcement_id)} == \
        {("cancelled", f"announcement {gone}")}


def test_an_expired_announcement_sends_nothing(app, county):
    announcement_id = planned(app, channels=["sms"], areas=[VILLAGE_A])
    change(app, announcement_id, expires=utcnow() - timedelta(seconds=1))
    provider = use_provider(app, "sms", Scripted())
    assert deliver(app, announcement_id) == 5
    assert provider.sent == []
    assert {(row.status, row.last_error) for row in ledger_rows(app, announcement_id)} == \
        {("failed", "the announcement expired before this delivery was sent")}


def test_the_announcement_is_done_when_its_last_pending_delivery_is_settled(app, county):
    announcement_id = planned(app, channels=["sms", "wechat"], areas=[VILLAGE_A])
    use_provider(app, "sms", Scripted())
    use_provider(app, "wechat", Scripted())
    deliver(app, announcement_id, "sms")
    assert state(app, announcement_id) == "sending"  # WeChat's batch is still queued
    deliver(app, announcement_id, "wechat")
    with app.extensions["engine"].connect() as conn:
        row = row_of(conn, announcement_id)
    assert row.state == "done" and row.finished_at is not None
