"""gateway/delivery/escalation.py: after a permanent failure, the next channel in the resident's
policy — never one already planned for them, never for places, never for someone reached."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.delivery import escalation, queues
from gateway.store import ledger, roster
from gateway.store.schema import residents
from tests.gateway.conftest import VILLAGE_A, person
from tests.gateway.delivery.conftest import (by_address, hand_over, ledger_rows, planned, reach,
                                             row_of)

pytestmark = pytest.mark.integration

# Visually impaired, with a phone and a WeChat account: the policy plans a call and an SMS,
# so WeChat is the one fallback left for them.
FOLLOWERS = {"甲": ("+8613800000041", "o_blind1"), "乙": ("+8613800000042", "o_blind2")}


@pytest.fixture
def followers(app, county) -> dict[str, int]:
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [person(name, VILLAGE_A, phone=phone, openid=openid,
                                              visual=True, born=1970)
                                       for name, (phone, openid) in FOLLOWERS.items()])
        return dict(conn.execute(select(residents.c.name, residents.c.id)
                                 .where(residents.c.name.in_(FOLLOWERS))).all())


def escalate(app, announcement_id, channel, recipient_ids, batch=0) -> dict[str, int]:
    with app.app_context(), app.extensions["engine"].begin() as conn:
        return escalation.escalate(conn, row_of(conn, announcement_id), channel, batch,
                                   recipient_ids)


def delivery(app, announcement_id, channel, address):
    return by_address(app, announcement_id)[(channel, address)]


def test_the_fallback_skips_every_channel_already_planned_and_is_written_once(app, followers):
    announcement_id = planned(app, areas=[VILLAGE_A])
    phone, openid = FOLLOWERS["甲"]
    assert ("wechat", openid) not in by_address(app, announcement_id)
    hand_over(app, announcement_id, [delivery(app, announcement_id, "sms", phone).id], "failed")
    assert escalate(app, announcement_id, "sms", [followers["甲"]], batch=3) == {"wechat": 1}
    added = delivery(app, announcement_id, "wechat", openid)
    assert (added.recipient_id, added.status, added.attempts, added.batch) == \
        (followers["甲"], "queued", 0, queues.ESCALATION_BATCH + 3)
    assert escalation.batch_for(3) == added.batch
    # The same failure seen by a second worker, then the call failing too: WeChat is planned.
    assert escalate(app, announcement_id, "sms", [followers["甲"]], batch=3) == {}
    assert escalate(app, announcement_id, "voice", [followers["甲"]]) == {}
    assert [row.channel for row in ledger_rows(app, announcement_id)
            if row.recipient_id == followers["甲"]] == ["voice", "sms", "wechat"]
    with app.extensions["engine"].connect() as conn:
        assert ledger.counts(conn, announcement_id)["wechat"]["queued"] == \
            sum(1 for row in ledger_rows(app, announcement_id)
                if row.channel == "wechat" and row.status == "queued")


def test_no_one_is_escalated_whom_another_channel_reached(app, followers):
    announcement_id = planned(app, areas=[VILLAGE_A])
    reached, only_sent = followers["甲"], followers["乙"]
    sms = {name: delivery(app, announcement_id, "sms", phone).id
           for name, (phone, _) in FOLLOWERS.items()}
    hand_over(app, announcement_id, list(sms.values()))
    reach(app, [sms["甲"]])  # 乙's SMS was taken by the provider, but is not delivered yet
    calls = [delivery(app, announcement_id, "voice", phone).id for phone, _ in FOLLOWERS.values()]
    hand_over(app, announcement_id, calls, "failed")
    assert escalate(app, announcement_id, "voice", [reached, only_sent]) == {"wechat": 1}
    wechat = {row.recipient_id for row in ledger_rows(app, announcement_id)
              if row.channel == "wechat"}
    assert only_sent in wechat and reached not in wechat


@pytest.mark.parametrize("place", ["loudspeaker", "wecom_robot"])
def test_a_place_that_failed_is_not_escalated(app, followers, place):
    announcement_id = planned(app, areas=[VILLAGE_A])
    before = ledger_rows(app, announcement_id)
    # Device ids and resident ids are numbered apart: a device's id may be a resident's.
    assert escalate(app, announcement_id, place, list(followers.values())) == {}
    assert escalate(app, announcement_id, "sms", []) == {}
    assert ledger_rows(app, announcement_id) == before


def test_only_channels_the_announcement_allows_are_fallbacks(app, followers):
    announcement_id = planned(app, areas=[VILLAGE_A], channels=["sms", "voice"])
    phone, _ = FOLLOWERS["甲"]
    hand_over(app, announcement_id, [delivery(app, announcement_id, "sms", phone).id], "failed")
    assert escalate(app, announcement_id, "sms", [followers["甲"]]) == {}
    assert all(row.channel != "wechat" for row in ledger_rows(app, announcement_id))
