"""gateway/delivery/fieldwork.py and the ledger's in-person deliveries: what a grid worker
sees, and what their taps at the door do — a "told in person" counts as reached and confirmed
everywhere, ends the notice's other sends to the resident, and is recorded once per tap id."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from gateway.delivery import disclosure, escalation, fieldwork, lifecycle, reach, reports
from gateway.store import grids, ledger, roster
from gateway.store.accounts import create_user, find_user
from gateway.store.db import utcnow
from gateway.store.schema import announcements, audit_log, grid_visits, residents
from tests.gateway.conftest import VILLAGE_A, VILLAGE_B
from tests.gateway.delivery.conftest import (SENDER, by_address, hand_over, ledger_rows, plan,
                                             planned, reach as delivered, row_of, user)

pytestmark = pytest.mark.integration

GRID_A = VILLAGE_A + "001"
GRID_B = VILLAGE_B + "001"
#: Resident (by name in tests/gateway/conftest.py) → grid.
IN_GRIDS = {"张伟": GRID_A, "李娜": GRID_A, "陈桂英": GRID_B}


@pytest.fixture
def field(app, county) -> dict[str, int]:
    """Grid A (张伟, blind; 李娜) worked by 网格员王, grid B (陈桂英, 77) by 网格员李."""
    with app.extensions["engine"].begin() as conn:
        for code, name in ((GRID_A, "一组"), (GRID_B, "二组")):
            grids.add_grid(conn, code, name, "test")
        for worker, code in (("网格员王", GRID_A), ("网格员李", GRID_B)):
            create_user(conn, worker, "grid_worker", f"{worker}-password")
            grids.assign(conn, code, worker, "test")
        for name, code in IN_GRIDS.items():
            conn.execute(update(residents).where(residents.c.name == name).values(grid=code))
        return dict(conn.execute(select(residents.c.name, residents.c.id)).all())


def worker(app, name="网格员王"):
    with app.extensions["engine"].connect() as conn:
        return find_user(conn, name)


def work(app, name="网格员王") -> list[dict]:
    with app.extensions["engine"].connect() as conn:
        return fieldwork.worklist(conn, worker(app, name).id)


def tap(app, announcement_id, resident_id, outcome="told", tap_id="tap-0001", name="网格员王",
        note=""):
    with app.app_context(), app.extensions["engine"].begin() as conn:
        return fieldwork.apply_tap(conn, worker(app, name), {
            "id": tap_id, "announcement": announcement_id, "resident": resident_id,
            "outcome": outcome, "note": note, "tapped_at": "2026-12-02T06:00:00Z"})


def status(app, announcement_id) -> dict:
    with app.app_context(), app.extensions["engine"].connect() as conn:
        return reports.status(conn, row_of(conn, announcement_id))


def test_a_grid_worker_sees_only_the_people_of_their_grids_still_to_reach(app, field):
    announcement_id = planned(app, areas=[VILLAGE_A, VILLAGE_B], severity="severe")
    [notice] = work(app)
    assert notice["id"] == announcement_id
    assert {p["name"] for p in notice["people"]} == {"张伟", "李娜"}
    blind = next(p for p in notice["people"] if p["name"] == "张伟")
    assert (blind["phone"], blind["grid"], blind["section"]) == \
        ("+8613800000013", GRID_A, reach.NOT_REACHED)
    assert "blind" in blind["needs"]
    assert {t["channel"] for t in blind["tried"]} == {"voice", "sms"}
    [other] = work(app, "网格员李")
    assert [(p["name"], p["needs"]) for p in other["people"]] == \
        [("陈桂英", ["elderly", "no_smartphone"])]


def test_reached_but_unconfirmed_stay_on_the_list_only_where_confirmation_is_required(app, field):
    severe = planned(app, areas=[VILLAGE_A], severity="severe")
    moderate = planned(app, areas=[VILLAGE_A], severity="moderate")
    for announcement_id in (severe, moderate):
        rows = by_address(app, announcement_id)
        ids = [rows[("sms", phone)].id for phone in ("+8613800000013", "+8613800000012")]
        hand_over(app, announcement_id, ids)
        delivered(app, ids)
    [notice] = work(app)  # the moderate one has nobody left; the severe one the blind man
    assert notice["id"] == severe
    assert [(p["name"], p["section"]) for p in notice["people"]] == [("张伟", reach.UNCONFIRMED)]


def test_told_in_person_is_a_confirmed_delivery_that_ends_the_other_sends(app, field):
    announcement_id = planned(app, areas=[VILLAGE_A], severity="severe")
    before = by_address(app, announcement_id)
    assert tap(app, announcement_id, field["张伟"]) is True
    rows = by_address(app, announcement_id)
    visit = rows[("in_person", "网格员王")]
    assert (visit.recipient_id, visit.status, visit.attempts) == (field["张伟"], "confirmed", 1)
    for channel, phone in (("voice", "+8613800000013"), ("sms", "+8613800000013")):
        assert before[(channel, phone)].status == "queued"
        assert rows[(channel, phone)].status == "cancelled"
        assert rows[(channel, phone)].last_error == "told in person by 网格员王"
    counts = status(app, announcement_id)
    assert (counts["reached_residents"], counts["confirmed_residents"]) == (1, 1)
    assert counts["deliveries"]["in_person"]["confirmed"] == 1
    assert counts["deliveries"]["voice"]["cancelled"] == 1
    assert {p["name"] for p in work(app)[0]["people"]} == {"李娜"}
    with app.app_context(), app.extensions["engine"].connect() as conn:
        people, _ = reports.unreached(conn, row_of(conn, announcement_id))
        assert field["张伟"] not in {p["id"] for p in people}
        report = disclosure.report(conn, row_of(conn, announcement_id))
        assert (report["total"]["reached"], report["total"]["first_in_person"],
                report["total"]["confirmed"]) == (1, 1, 1)


def test_a_tap_sent_twice_is_recorded_once_and_audited_once(app, field):
    announcement_id = planned(app, areas=[VILLAGE_A])
    assert tap(app, announcement_id, field["李娜"], "not_home", "tap-twice-1") is True
    assert tap(app, announcement_id, field["李娜"], "not_home", "tap-twice-1") is False
    assert tap(app, announcement_id, field["李娜"], "told", "tap-twice-2") is True
    assert tap(app, announcement_id, field["李娜"], "told", "tap-twice-2") is False
    assert tap(app, announcement_id, field["李娜"], "told", "tap-twice-3") is True  # told again
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(grid_visits.c.outcome).order_by(grid_visits.c.id)
                            ).scalars().all() == ["not_home", "told", "told"]
        audited = conn.execute(select(audit_log.c.actor, audit_log.c.target, audit_log.c.detail)
                               .where(audit_log.c.action == "visit")).all()
    assert [(a.actor, a.target) for a in audited] == [("网格员王", f"resident:{field['李娜']}")] * 3
    assert '"tap": "tap-twice-1"' in audited[0].detail
    assert [row.channel for row in by_address(app, announcement_id).values()].count("in_person") == 1
    assert status(app, announcement_id)["reached_residents"] == 1


def test_not_at_home_and_refused_are_attempts_shown_with_what_was_tried(app, field):
    announcement_id = planned(app, areas=[VILLAGE_A])
    tap(app, announcement_id, field["李娜"], "not_home", "tap-nothome")
    tap(app, announcement_id, field["张伟"], "refused", "tap-refused", note="不开门")
    people = {p["name"]: p for p in work(app)[0]["people"]}
    assert [(v["outcome"], v["worker"]) for v in people["李娜"]["visits"]] == \
        [("not_home", "网格员王")]
    assert [(v["outcome"], v["note"]) for v in people["张伟"]["visits"]] == [("refused", "不开门")]
    assert status(app, announcement_id)["reached_residents"] == 0
    assert ("in_person", "网格员王") not in by_address(app, announcement_id)


def test_moved_flags_the_resident_for_review_until_an_edit_clears_it(app, field):
    announcement_id = planned(app, areas=[VILLAGE_A])
    tap(app, announcement_id, field["李娜"], "moved", "tap-moved-1", note="已搬到县城")
    with app.extensions["engine"].begin() as conn:
        flagged = conn.execute(select(residents.c.review_note)
                               .where(residents.c.id == field["李娜"])).scalar()
        assert flagged == "已搬到县城"
        roster.update_resident(conn, field["李娜"], {"name": "李娜", "phone": "13800000012",
                                                     "area_code": VILLAGE_A, "grid": GRID_A},
                               "admin")
        row = conn.execute(select(residents.c.review_note, residents.c.grid)
                           .where(residents.c.id == field["李娜"])).one()
    assert tuple(row) == (None, GRID_A)


@pytest.mark.parametrize("change, refusal", [
    ({"resident": "陈桂英"}, "is not one of this notice's people in your grids"),
    ({"outcome": "gone"}, "outcome must be one of told, not_home, moved, refused"),
    ({"id": "short"}, "a tap needs an id of 8 to 64"),
    ({"announcement": 999}, "notice 999 is not being sent"),
    ({"announcement": True}, "a tap names its notice and resident by their ids"),
    ({"tapped_at": "yesterday"}, "tapped_at is not an ISO 8601 time"),
    ({"note": "x" * 301}, "a note is text of at most 300 characters"),
])
def test_a_tap_that_is_not_the_workers_to_make_is_refused_and_changes_nothing(app, field, change,
                                                                           refusal):
    announcement_id = planned(app, areas=[VILLAGE_A, VILLAGE_B])
    sent = {"id": "tap-refuse-1", "announcement": announcement_id, "resident": field["李娜"],
            "outcome": "told"} | change
    if sent["resident"] == "陈桂英":
        sent["resident"] = field["陈桂英"]
    with pytest.raises(fieldwork.TapRefused, match=refusal):
        with app.app_context(), app.extensions["engine"].begin() as conn:
            fieldwork.apply_tap(conn, worker(app), sent)
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(grid_visits.c.id)).first() is None
    assert status(app, announcement_id)["reached_residents"] == 0


def test_a_call_put_back_for_a_retry_after_the_visit_is_cancelled_not_claimed(app, field):
    announcement_id = planned(app, areas=[VILLAGE_A], severity="severe")
    call = by_address(app, announcement_id)[("voice", "+8613800000013")]
    hand_over(app, announcement_id, [call.id])  # the call is ringing while the worker knocks
    tap(app, announcement_id, field["张伟"])
    with app.app_context(), app.extensions["engine"].begin() as conn:
        # Not answered: outcomes puts the call back for its next try.
        assert ledger.reschedule(conn, announcement_id, "voice", [call.id], "no-answer",
                                 from_status="sent") == 1
        claimed = ledger.claim(conn, announcement_id, "voice", owner="w1",
                               lease=timedelta(seconds=60))
        assert call.id not in {row.id for row in claimed}
        # Nor does escalation plan another channel for them.
        assert escalation.escalate(conn, row_of(conn, announcement_id), "voice", 0,
                                   [field["张伟"]]) == {}
    assert by_address(app, announcement_id)[("voice", "+8613800000013")].status == "cancelled"
    with app.extensions["engine"].connect() as conn:
        assert ledger.counts(conn, announcement_id)["voice"]["cancelled"] == 1


def withdraw(app, announcement_id: int) -> int:
    """Its author withdraws the notice: the id of the withdrawal notice, not yet planned."""
    with app.app_context(), app.extensions["engine"].begin() as conn:
        return lifecycle.cancel(conn, announcement_id, user(conn, "author"),
                                sender=SENDER).announcement_id


def test_those_told_in_person_are_left_for_a_visit_by_the_withdrawal(app, field):
    """No job can send a withdrawal to a resident told the notice at the door (none is queued):
    they are in its audience, on their grid worker's list under it, and reached when told."""
    announcement_id = planned(app, areas=[VILLAGE_A], channels=["sms"])
    sms = by_address(app, announcement_id)[("sms", "+8613800000012")]
    hand_over(app, announcement_id, [sms.id])  # 李娜's SMS went out; 张伟 was told at the door
    tap(app, announcement_id, field["张伟"])
    withdrawal = withdraw(app, announcement_id)
    assert plan(app, withdrawal) == {"sms": 1}
    assert [(row.channel, row.recipient_id) for row in ledger_rows(app, withdrawal)] == \
        [("sms", field["李娜"])]
    counts = status(app, withdrawal)
    assert (counts["reached_residents"], counts["not_reached_residents"]) == (0, 2)
    (entry,) = work(app)  # the withdrawn notice is off the list, its withdrawal on it
    assert (entry["id"], entry["withdrawal"]) == (withdrawal, True)
    assert {p["name"]: [(v["outcome"], v["worker"]) for v in p["withdrawn_visits"]]
            for p in entry["people"]} == {"张伟": [("told", "网格员王")], "李娜": []}
    correction_sms = by_address(app, withdrawal)[("sms", "+8613800000012")]
    hand_over(app, withdrawal, [correction_sms.id])
    delivered(app, [correction_sms.id])
    assert [p["name"] for p in work(app)[0]["people"]] == ["张伟"]
    assert tap(app, withdrawal, field["张伟"], tap_id="tap-withdrawal") is True
    counts = status(app, withdrawal)
    assert (counts["reached_residents"], counts["not_reached_residents"]) == (2, 0)
    assert work(app) == []
    with app.app_context(), app.extensions["engine"].connect() as conn:
        people, _ = reports.unreached(conn, row_of(conn, withdrawal))
    assert people == []


def test_a_withdrawal_leaves_the_list_when_the_notice_it_withdrew_would_have_expired(app, field):
    announcement_id = planned(app, areas=[VILLAGE_A], channels=["sms"])
    tap(app, announcement_id, field["张伟"])
    withdrawal = withdraw(app, announcement_id)
    plan(app, withdrawal)
    assert [entry["id"] for entry in work(app)] == [withdrawal]
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                     .values(expires=utcnow() - timedelta(minutes=1)))
    assert work(app) == []


def test_the_grid_report_counts_machine_and_in_person_reach_per_village_and_grid(app, field):
    announcement_id = planned(app, areas=[VILLAGE_A, VILLAGE_B], channels=["sms"])
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                     .values(sent=utcnow() - timedelta(minutes=10)))
    sms = by_address(app, announcement_id)[("sms", "+8613800000012")]
    hand_over(app, announcement_id, [sms.id])
    delivered(app, [sms.id])  # 李娜 by SMS
    tap(app, announcement_id, field["张伟"])  # 张伟 at the door
    tap(app, announcement_id, field["陈桂英"], "not_home", "tap-report-b", name="网格员李")
    with app.app_context(), app.extensions["engine"].connect() as conn:
        rows = fieldwork.grid_report(conn, row_of(conn, announcement_id))
    by_grid = {(row["village"], row["grid"]): row for row in rows}
    grid_a = by_grid[(VILLAGE_A, GRID_A)]
    assert (grid_a["targeted"], grid_a["reached_by_machine"], grid_a["reached_in_person"],
            grid_a["not_reached"], grid_a["workers"]) == (2, 1, 1, 0, ["网格员王"])
    assert 0 < grid_a["seconds_to_90"] <= 600 + 5 and grid_a["last_visit"] is not None
    grid_b = by_grid[(VILLAGE_B, GRID_B)]
    assert (grid_b["targeted"], grid_b["not_reached"], grid_b["seconds_to_90"],
            grid_b["workers"]) == (1, 1, None, ["网格员李"])
    assert grid_b["last_visit"] is not None  # a visit, though no one was reached
    no_grid = by_grid[(VILLAGE_A, None)]  # the county's other village A residents
    assert no_grid["workers"] == [] and no_grid["last_visit"] is None
    assert sum(row["targeted"] for row in rows) == status(app, announcement_id)["not_reached_residents"] + 2
    text = fieldwork.grid_report_csv(rows, list(fieldwork.REPORT_COLUMNS), {GRID_A: "一组"})
    assert text.startswith("\ufeffvillage,grid,") and f"一组 {GRID_A},2,1,1,0," in text
