"""gateway/delivery/outcomes.py: a provider's later word on one delivery. Statuses move forward
only; a failure escalates; an unanswered call is tried again; a vulnerable resident's call is
not done until they confirm a severe notice."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from channels.base import StatusUpdate
from audiences.policy import parse_policy
from gateway.delivery import escalation, outcomes, queues
from gateway.store import roster
from gateway.store.schema import residents
from tests.gateway.conftest import RESIDENTS, VILLAGE_A, person
from tests.gateway.delivery.conftest import (by_address, hand_over, ledger_rows, planned,
                                             queued_batches, scheduled_batches)

pytestmark = pytest.mark.integration

YEAR = datetime.now(timezone.utc).year
BLIND = RESIDENTS["blind"][0].phone
SMS_ONLY = RESIDENTS["young sms only"][0].phone
# Called because of their age alone, and called because they have no smartphone.
AGED_65 = "+8613800000051"
AGED_64 = "+8613800000052"


@pytest.fixture
def aged(app, county):
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [
            person("满六十五", VILLAGE_A, phone=AGED_65, born=YEAR - 65),
            person("六十四", VILLAGE_A, phone=AGED_64, born=YEAR - 64, smartphone=False)])


def apply(app, delivery_id, status, **kwargs) -> bool:
    with app.app_context():
        return outcomes.apply(delivery_id, StatusUpdate(status, **kwargs))


def sent(app, announcement_id, channel, address):
    """The delivery, as its job leaves it: handed to the provider."""
    delivery_id = by_address(app, announcement_id)[(channel, address)].id
    hand_over(app, announcement_id, [delivery_id])
    return delivery_id


def now(app, announcement_id, channel, address):
    return by_address(app, announcement_id)[(channel, address)]


def test_callbacks_move_a_delivery_forward_only(app, county):
    announcement_id = planned(app, channels=["sms", "voice"], areas=[VILLAGE_A])
    delivery_id = sent(app, announcement_id, "sms", SMS_ONLY)
    rows = len(ledger_rows(app, announcement_id))
    assert apply(app, delivery_id, "delivered", provider_id="SM1") is True
    assert apply(app, delivery_id, "sent") is False       # late
    assert apply(app, delivery_id, "delivered") is False  # repeated
    assert apply(app, delivery_id, "failed", error="[30008] unknown") is False
    row = now(app, announcement_id, "sms", SMS_ONLY)
    assert (row.status, row.provider_id, row.last_error) == ("delivered", "SM1", None)
    assert len(ledger_rows(app, announcement_id)) == rows  # a late failure escalates nothing
    assert apply(app, delivery_id, "confirmed") is True   # a reply of 1 after delivery
    assert now(app, announcement_id, "sms", SMS_ONLY).status == "confirmed"
    assert apply(app, 999_999, "delivered") is False


def test_a_failure_ends_the_delivery_and_queues_the_next_channel(app, county):
    announcement_id = planned(app, channels=["sms", "voice"], areas=[VILLAGE_A])
    delivery_id = sent(app, announcement_id, "sms", SMS_ONLY)
    assert apply(app, delivery_id, "failed", error="[30007] filtered as spam")
    failed = now(app, announcement_id, "sms", SMS_ONLY)
    assert (failed.status, failed.last_error) == ("failed", "[30007] filtered as spam")
    call = now(app, announcement_id, "voice", SMS_ONLY)
    assert (call.status, call.batch) == ("queued", escalation.batch_for(failed.batch))
    assert (announcement_id, call.batch) in queued_batches(app, "voice")


def test_a_message_undelivered_for_a_transient_reason_is_sent_again(app, county):
    announcement_id = planned(app, channels=["sms", "voice"], areas=[VILLAGE_A])
    delivery_id = sent(app, announcement_id, "sms", SMS_ONLY)
    assert apply(app, delivery_id, "failed", error="[30003] unreachable", permanent=False,
                 provider_id="P-sent")
    row = now(app, announcement_id, "sms", SMS_ONLY)
    assert (row.status, row.provider_id, row.last_error) == ("planned", None, "[30003] unreachable")
    assert (announcement_id, row.batch) in scheduled_batches(app, "sms")
    assert ("voice", SMS_ONLY) not in by_address(app, announcement_id)  # not escalated


def test_a_transient_failure_past_the_retry_budget_fails_and_escalates(app, county):
    app.config["RETRY_BUDGET_MINUTES"] = {severity: 0 for severity in
                                          ("extreme", "severe", "moderate", "minor", "unknown")}
    announcement_id = planned(app, channels=["sms", "voice"], areas=[VILLAGE_A])
    delivery_id = sent(app, announcement_id, "sms", SMS_ONLY)
    assert apply(app, delivery_id, "failed", error="[30003] unreachable", permanent=False)
    row = now(app, announcement_id, "sms", SMS_ONLY)
    assert (row.status, row.last_error) == ("failed", "gave up after 1 tries: [30003] unreachable")
    assert now(app, announcement_id, "voice", SMS_ONLY).status == "queued"


def test_an_account_limit_pauses_the_channel_and_fails_nobody(app, county):
    announcement_id = planned(app, channels=["sms", "voice"], areas=[VILLAGE_A])
    delivery_id = sent(app, announcement_id, "sms", SMS_ONLY)
    assert apply(app, delivery_id, "failed", error="[30023] daily message cap reached",
                 permanent=False, pauses_channel=True, retry_after=3600)
    assert now(app, announcement_id, "sms", SMS_ONLY).status == "planned"
    with app.app_context():
        seconds, reason = queues.channel_pause("sms")
    assert 3500 < seconds <= 3600 and reason == "[30023] daily message cap reached"
    assert ("voice", SMS_ONLY) not in by_address(app, announcement_id)


def test_an_invalid_number_goes_to_wechat_never_to_a_call(app, county):
    app.extensions["policy"] = parse_policy({"rule": [{"name": "SMS first",
                                                       "first_of": ["sms", "wechat"]}]})
    announcement_id = planned(app, channels=["sms", "voice", "wechat"], areas=[VILLAGE_A])
    follower = RESIDENTS["young follower"][0]
    delivery_id = sent(app, announcement_id, "sms", follower.phone)
    assert apply(app, delivery_id, "failed", error="[21211] invalid phone number",
                 address_invalid=True)
    rows = by_address(app, announcement_id)
    assert ("voice", follower.phone) not in rows  # fallback order is sms, voice, wechat
    assert rows[("wechat", follower.wechat_openid)].status == "queued"
    with app.extensions["engine"].connect() as conn:
        mark = conn.execute(select(residents.c.phone_invalid)
                            .where(residents.c.phone == follower.phone)).scalar_one()
    assert mark == "[21211] invalid phone number"


def test_a_repeated_callback_for_a_call_already_put_back_changes_nothing(app, county, aged):
    announcement_id = planned(app, channels=["voice"], areas=[VILLAGE_A])
    call = sent(app, announcement_id, "voice", AGED_65)
    no_answer = StatusUpdate("failed", provider_id="P-sent", error="no-answer", permanent=False)
    with app.app_context():  # as Twilio's callbacks come: twice, the same
        assert outcomes.apply(call, no_answer, from_provider=True) is True
        assert outcomes.apply(call, no_answer, from_provider=True) is False
    row = now(app, announcement_id, "voice", AGED_65)
    assert (row.status, row.attempts) == ("planned", 1)


def test_an_unanswered_call_is_called_again_and_a_refused_one_is_not(app, county, aged):
    announcement_id = planned(app, channels=["voice"], areas=[VILLAGE_A])
    unanswered = sent(app, announcement_id, "voice", BLIND)
    assert apply(app, unanswered, "failed", error="no-answer", permanent=False)
    row = now(app, announcement_id, "voice", BLIND)
    assert (row.status, row.attempts, row.last_error) == ("planned", 1, "no-answer")
    assert (announcement_id, row.batch) in scheduled_batches(app, "voice")
    refused = sent(app, announcement_id, "voice", AGED_65)
    assert apply(app, refused, "failed", error="[21215] not permitted")
    row = now(app, announcement_id, "voice", AGED_65)
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "[21215] not permitted")


@pytest.mark.parametrize("address, severity, channel, status", [
    (BLIND, "severe", "voice", "planned"),         # visually impaired: called again
    (AGED_65, "severe", "voice", "planned"),       # 65 in the year it was sent
    (AGED_65, "extreme", "voice", "planned"),
    (AGED_64, "severe", "voice", "delivered"),
    (BLIND, "moderate", "voice", "delivered"),     # only severe and extreme need a 1
    (BLIND, "severe", "sms", "delivered"),         # and only on a call
])
def test_who_must_confirm_an_answered_call(app, county, aged, address, severity, channel, status):
    announcement_id = planned(app, channels=["voice", "sms"], areas=[VILLAGE_A], severity=severity)
    delivery_id = sent(app, announcement_id, channel, address)
    assert apply(app, delivery_id, "delivered") is True
    row = now(app, announcement_id, channel, address)
    assert row.status == status
    if status == "planned":
        assert row.last_error == outcomes.UNCONFIRMED
        assert (announcement_id, row.batch) in scheduled_batches(app, channel)


def test_an_answer_without_a_1_on_the_last_call_is_kept_as_delivered_and_said(app, county):
    announcement_id = planned(app, channels=["voice"], areas=[VILLAGE_A], severity="severe")
    for _ in range(app.config["VOICE_MAX_ATTEMPTS"]):
        assert apply(app, sent(app, announcement_id, "voice", BLIND), "delivered")
    row = now(app, announcement_id, "voice", BLIND)
    assert (row.status, row.attempts) == ("delivered", 3)
    assert row.last_error == f"not confirmed after 3 calls: {outcomes.UNCONFIRMED}"


def test_a_confirmation_needs_no_second_call(app, county):
    announcement_id = planned(app, channels=["voice"], areas=[VILLAGE_A], severity="severe")
    assert apply(app, sent(app, announcement_id, "voice", BLIND), "confirmed") is True
    assert now(app, announcement_id, "voice", BLIND).status == "confirmed"
