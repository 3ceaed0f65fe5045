"""gateway/delivery/planner.py: batch numbering, streaming residents by area, plans that resume,
drills, corrections, and which channels an announcement is planned over."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import redis
from sqlalchemy import select

from gateway.config import from_env
from gateway.delivery import lifecycle, planner
from gateway.store import ledger, roster
from gateway.store.schema import announcements, residents
from tests.gateway.conftest import OTHER_DISTRICT_VILLAGE, VILLAGE_A, person
from tests.gateway.delivery.conftest import (SENDER, by_address, hand_over, ledger_rows,
                                             plan, planned, queued_batches, reach,
                                             released, row_of, user)


# --- Batches -------------------------------------------------------------------------------

def test_batches_are_numbered_per_channel_size_rows_each():
    batches = planner.Batches(3)
    assert [batches.next("sms") for _ in range(7)] == [0, 0, 0, 1, 1, 1, 2]
    assert batches.next("voice") == 0  # each channel counts on its own
    assert (batches.complete("sms"), batches.total("sms")) == (2, 3)  # batch 2 is not full
    assert (batches.complete("voice"), batches.total("voice")) == (0, 1)
    assert (batches.complete("wechat"), batches.total("wechat")) == (0, 0)


def test_batches_go_on_from_what_an_earlier_run_filled():
    batches = planner.Batches(3, {"sms": 6})
    assert (batches.complete("sms"), batches.total("sms")) == (2, 2)  # exactly full
    assert batches.next("sms") == 2
    assert (batches.complete("sms"), batches.total("sms")) == (2, 3)


# --- streaming residents beneath areas ------------------------------------------------------

EDGE_CODES = ["450702100201", "450702100999", "450702101001", "450702099999",
              "450709100201", "450709999999", "450710100201", "450800100201", "450699999999"]


@pytest.fixture
def edge_residents(app):
    """One resident per code, named after it: codes on both sides of several ranges' ends."""
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [person(code, code, test=code.endswith("1"))
                                       for code in EDGE_CODES])


def streamed(app, codes, **kwargs) -> list[list[str]]:
    with app.extensions["engine"].connect() as conn:
        ids = dict(conn.execute(select(residents.c.id, residents.c.name)).all())
        return [[ids[row.id] for row in chunk]
                for chunk in planner.stream_residents(conn, codes, **kwargs)]


@pytest.mark.integration
@pytest.mark.parametrize("codes, expected", [
    (["450702100"], ["450702100201", "450702100999"]),                  # a town, its last village
    (["450702100999"], ["450702100999"]),                                # one village
    (["450709"], ["450709100201", "450709999999"]),                      # a code ending in 9
    (["450700"], ["450702100201", "450702100999", "450702101001", "450702099999",
                  "450709100201", "450709999999", "450710100201"]),      # a prefecture: 4507…
    (["450702100", "450710"], ["450702100201", "450702100999", "450710100201"]),
])
def test_residents_beneath_the_codes_and_none_past_the_end_of_a_range(app, edge_residents,
                                                                     codes, expected):
    assert [name for chunk in streamed(app, codes, drill=False) for name in chunk] == expected


@pytest.mark.integration
def test_residents_come_in_id_order_chunk_by_chunk_after_the_cursor(app, edge_residents,
                                                                    monkeypatch):
    monkeypatch.setattr(planner, "CHUNK", 2)
    chunks = streamed(app, ["450700"], drill=False)
    assert [len(chunk) for chunk in chunks] == [2, 2, 2, 1]
    with app.extensions["engine"].connect() as conn:
        third = conn.execute(select(residents.c.id).where(residents.c.name == EDGE_CODES[2])
                             ).scalar_one()
    resumed = streamed(app, ["450700"], drill=False, after=third)
    assert resumed == [["450702099999", "450709100201"], ["450709999999", "450710100201"]]
    assert streamed(app, ["450700"], drill=True) == [["450702100201", "450702101001"],
                                                     ["450709100201", "450710100201"]]


# --- plan ----------------------------------------------------------------------------------

def recipients(app, announcement_id) -> dict[tuple[str, int], int]:
    """(channel, recipient) -> batch."""
    return {(row.channel, row.recipient_id): row.batch for row in ledger_rows(app, announcement_id)}


@pytest.mark.integration
def test_a_plan_job_run_again_plans_nothing_more(app, county):
    announcement_id = released(app)
    first = plan(app, announcement_id)
    assert first["sms"] > 0 and first["loudspeaker"] == 2
    before = ledger_rows(app, announcement_id)
    assert plan(app, announcement_id) == {}  # no longer approved: a repeated job does nothing
    assert ledger_rows(app, announcement_id) == before
    with app.extensions["engine"].connect() as conn:
        assert row_of(conn, announcement_id).state == "sending"


@pytest.mark.integration
def test_an_interrupted_plan_resumes_at_its_cursor_and_numbers_batches_on(app, county,
                                                                         monkeypatch):
    app.config["BATCH_SIZE"] = 2
    monkeypatch.setattr(planner, "CHUNK", 2)
    whole, interrupted = released(app), released(app)
    assert plan(app, whole)["sms"] == 5
    real, calls = planner._write_and_queue, []

    def die_on_the_second_chunk(*args):
        calls.append(args)
        if len(calls) == 2:
            raise SystemExit("worker killed")
        real(*args)

    monkeypatch.setattr(planner, "_write_and_queue", die_on_the_second_chunk)
    with pytest.raises(SystemExit):
        plan(app, interrupted)
    with app.extensions["engine"].connect() as conn:
        cursor = json.loads(row_of(conn, interrupted).plan_cursor)
    assert cursor["speakers"] is False and len(ledger_rows(app, interrupted)) == 2
    monkeypatch.setattr(planner, "_write_and_queue", real)
    assert plan(app, interrupted) == plan_totals(app, whole)
    assert recipients(app, interrupted) == recipients(app, whole)
    for channel in ("sms", "wechat", "voice", "loudspeaker"):
        rows = [row for row in ledger_rows(app, whole) if row.channel == channel]
        assert [row.batch for row in rows] == [index // 2 for index in range(len(rows))]
        batches = {row.batch for row in ledger_rows(app, interrupted) if row.channel == channel}
        assert {(interrupted, batch) for batch in batches} <= queued_batches(app, channel)


@pytest.mark.integration
def test_a_plan_that_cannot_queue_stops_with_the_error_and_its_rows_kept(app, county,
                                                                       monkeypatch):
    """Jobs are queued on a thread beside the planner: Redis refusing them must still stop
    the plan (its job fails, to be run again), not leave it reporting success."""
    app.config["BATCH_SIZE"] = 2
    monkeypatch.setattr(planner, "CHUNK", 2)
    announcement_id = released(app)

    def refuse(*args):
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(planner.queues, "enqueue_batches", refuse)
    with pytest.raises(redis.ConnectionError, match="went away"):
        plan(app, announcement_id)
    with app.extensions["engine"].connect() as conn:
        assert row_of(conn, announcement_id).state == "approved"
        assert json.loads(row_of(conn, announcement_id).plan_cursor)["after"] > 0
    assert ledger_rows(app, announcement_id)  # committed rows stay for the reconciler


def plan_totals(app, announcement_id) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in ledger_rows(app, announcement_id):
        totals[row.channel] = totals.get(row.channel, 0) + 1
    return totals


@pytest.mark.integration
def test_a_test_message_reaches_only_test_residents_and_devices_and_no_group(app, county):
    with app.extensions["engine"].begin() as conn:
        roster.add_robot(conn, "沙埠村群", VILLAGE_A, "robot-key-1")
        testers = set(conn.execute(select(residents.c.id).where(
            residents.c.test_audience.is_(True), residents.c.area_code != OTHER_DISTRICT_VILLAGE)
        ).scalars())
    announcement_id = planned(app, status="test")
    rows = ledger_rows(app, announcement_id)
    assert {row.recipient_id for row in rows if row.channel in ("sms", "voice", "wechat")} == testers
    assert {row.address for row in rows if row.channel == "loudspeaker"} == {"spk-b"}
    assert not [row for row in rows if row.channel == "wecom_robot"]
    real = planned(app)
    assert ("wecom_robot", "robot-key-1") in by_address(app, real)


@pytest.mark.integration
def test_a_plan_with_no_one_to_reach_is_done_at_once(app, county):
    announcement_id = released(app, status="exercise", areas=[OTHER_DISTRICT_VILLAGE])
    assert plan(app, announcement_id) == {}
    with app.extensions["engine"].connect() as conn:
        row = row_of(conn, announcement_id)
    assert row.state == "done" and row.finished_at is not None
    assert ledger_rows(app, announcement_id) == []


@pytest.mark.integration
def test_a_correction_goes_only_where_the_original_was_handed_over(app, county):
    original = planned(app, channels=["sms", "wechat"])
    sms = [row for row in ledger_rows(app, original) if row.channel == "sms"]
    assert len(sms) == 5
    sent, delivered, confirmed, failed, in_flight = (row.id for row in sms)
    hand_over(app, original, [sent, delivered, confirmed])
    reach(app, [delivered])
    reach(app, [confirmed], "confirmed")
    hand_over(app, original, [failed], status="failed")
    hand_over(app, original, [in_flight], status="sending")  # a worker has it, no answer yet
    with app.extensions["engine"].begin() as conn:
        outcome = lifecycle.cancel(conn, original, user(conn, "author"),
                                   sender=SENDER)
    correction = outcome.announcement_id
    assert plan(app, correction) == {"sms": 3}
    copied = {(row.channel, row.recipient_id, row.address, row.language, row.batch)
              for row in ledger_rows(app, original) if row.id in (sent, delivered, confirmed)}
    rows = ledger_rows(app, correction)
    assert {(row.channel, row.recipient_id, row.address, row.language, row.batch)
            for row in rows} == copied
    assert {row.status for row in rows} == {"queued"}
    assert (correction, 0) in queued_batches(app, "sms")
    with app.extensions["engine"].connect() as conn:
        assert ledger.counts(conn, correction)["sms"]["queued"] == 3
        assert conn.execute(select(announcements.c.state)
                            .where(announcements.c.id == correction)).scalar_one() == "sending"


# --- planned_channels ----------------------------------------------------------------------

TWILIO = {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "secret",
          "TWILIO_FROM_NUMBER": "+15005550006"}


@pytest.mark.parametrize("environment, channels, expected", [
    ({}, ["wechat"], {"wechat", "wecom_robot"}),               # group robots come with WeChat
    ({}, ["sms", "loudspeaker"], {"sms", "loudspeaker"}),
    ({"OUTBOX_FALLBACK": "0"}, ["sms", "wechat"], {"wecom_robot"}),  # nothing else can send
    ({"OUTBOX_FALLBACK": "0", **TWILIO}, ["sms", "voice", "wechat"], {"sms", "voice", "wecom_robot"}),
])
def test_planned_channels_are_those_asked_for_that_can_be_sent(environment, channels, expected):
    config = from_env(environment)
    assert planner.planned_channels(SimpleNamespace(channels=json.dumps(channels)), config) == \
        expected


def test_a_number_marked_invalid_gets_no_sms_and_no_call(app, county):
    blind = "+8613800000013"  # visually impaired: voice and SMS, no WeChat
    with app.extensions["engine"].begin() as conn:
        resident_id = conn.execute(select(residents.c.id)
                                   .where(residents.c.phone == blind)).scalar_one()
        roster.mark_phone_invalid(conn, resident_id, blind, "[21211] invalid phone number")
    announcement_id = planned(app, channels=["sms", "voice", "wechat"], areas=[VILLAGE_A])
    rows = ledger_rows(app, announcement_id)
    assert not [row for row in rows if row.recipient_id == resident_id]
    assert any(row.address == "+8613800000012" for row in rows)  # the others are planned
