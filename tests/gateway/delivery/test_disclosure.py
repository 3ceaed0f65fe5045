"""Reach, honestly counted (issue 25): residents of every segment — blind, deaf with a phone
only, deaf with WeChat, elderly without a smartphone, young with WeChat — in a village with a
loudspeaker and one without. Their independent paths in the preview and the plan, the weak
segments and what would help, and the disclosure report after the notice went out, figure by
figure, equal to the status API's."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from gateway.delivery import disclosure, preview, reports
from gateway.store import accounts, grids, roster
from gateway.store.schema import areas, audit_log, reached, residents
from tests.gateway.conftest import person
from tests.gateway.delivery.conftest import (by_address, create, hand_over, plan, planned, reach,
                                             released, row_of)

pytestmark = pytest.mark.integration

TOWN = "450702101"
SPEAKER = "450702101201"  # a village with a loudspeaker
NONE = "450702101202"  # and one without

# key: (name, village, profile fields)
PEOPLE = {
    "blind none": ("盲甲", NONE, dict(phone="+8613900000001", visual=True, born=1970)),
    "blind speaker": ("盲乙", SPEAKER, dict(phone="+8613900000002", visual=True, born=1970)),
    "deaf phone none": ("聋甲", NONE, dict(phone="+8613900000003", hearing=True,
                                           smartphone=False)),
    "deaf phone speaker": ("聋乙", SPEAKER, dict(phone="+8613900000004", hearing=True,
                                                 smartphone=False)),
    "deaf wechat none": ("聋丙", NONE, dict(phone="+8613900000005", openid="o_deafw",
                                            hearing=True)),
    "elderly none": ("老甲", NONE, dict(phone="+8613900000006", born=1948, smartphone=False)),
    "elderly speaker": ("老乙", SPEAKER, dict(phone="+8613900000007", born=1948,
                                              smartphone=False)),
    "young none": ("青甲", NONE, dict(phone="+8613900000008", openid="o_young_a", born=1995)),
    "young speaker": ("青乙", SPEAKER, dict(phone="+8613900000009", openid="o_young_b",
                                            born=1995)),
}


def phone(key):
    return PEOPLE[key][2]["phone"]


def openid(key):
    return PEOPLE[key][2]["openid"]


@pytest.fixture
def segments_county(app, county):
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": TOWN, "name": "试点镇"},
                                     {"code": SPEAKER, "name": "有喇叭村"},
                                     {"code": NONE, "name": "无喇叭村"}])
        roster.insert_residents(conn, [person(name, village, **fields)
                                       for name, village, fields in PEOPLE.values()])
        roster.add_device(conn, "spk-pilot", SPEAKER)


def by_key(result) -> dict:
    return {(s["age_band"], s["impairment"]): s for s in result["segments"]}


def test_paths_weak_segments_and_suggestions_in_the_preview_and_the_plan(app, segments_county):
    announcement_id = released(app, areas=[TOWN])
    with app.app_context(), app.extensions["engine"].connect() as conn:
        result = preview.preview(conn, row_of(conn, announcement_id))
    segments = by_key(result)
    # Paths per segment: an SMS and a call to one handset are one; the loudspeaker counts only
    # for those who hear it; WeChat is a path of its own.
    assert {key: (s["residents"], s["paths"], s["fewer_than_two_channels"])
            for key, s in segments.items()} == {
        ("18-39", "none"): (2, {"1": 1, "2": 1}, 1),  # WeChat alone where no loudspeaker
        ("18-39", "hearing"): (3, {"1": 2, "2": 1}, 2),  # phone only, loudspeaker or not
        ("40-64", "visual"): (2, {"1": 1, "2": 1}, 1),
        ("65+", "none"): (2, {"1": 1, "2": 1}, 1),
    }
    assert [(s["age_band"], s["impairment"]) for s in result["weak_segments"]] == list(segments)
    assert segments[("18-39", "hearing")]["suggestions"] == [
        {"add": "grid_worker", "village": SPEAKER, "grid": None, "residents": 1},
        {"add": "grid_worker", "village": NONE, "grid": None, "residents": 1}]
    for key in (("18-39", "none"), ("40-64", "visual"), ("65+", "none")):
        assert segments[key]["suggestions"] == [
            {"add": "loudspeaker", "village": NONE, "grid": None, "residents": 1}]
    with app.app_context(), app.extensions["engine"].connect() as conn:
        thin = preview.thin_residents(conn, row_of(conn, announcement_id), TOWN, "18-39",
                                      "hearing")
    assert [(p["name"], p["paths"], p["add"]) for p in thin] == [
        ("聋乙", ["phone"], "grid_worker"), ("聋甲", ["phone"], "grid_worker")]
    plan(app, announcement_id)
    with app.extensions["engine"].connect() as conn:
        sent = conn.execute(select(audit_log.c.detail).where(audit_log.c.action == "send")).one()
    assert json.loads(sent.detail)["thin_residents"] == 5


def test_a_grid_with_a_worker_adds_a_visit_path_and_one_without_is_named(app, segments_county):
    """Issue 25, item 1: 聋甲's grid has a grid worker, so a visit is planned and they have two
    paths; 聋乙's grid has none, and the preview says to assign one to it."""
    worked, unworked = NONE + "001", SPEAKER + "001"
    with app.extensions["engine"].begin() as conn:
        grids.add_grid(conn, worked, "一组", "test")
        grids.add_grid(conn, unworked, "一组", "test")
        accounts.create_user(conn, "visitor", "grid_worker", "visitor-password")
        grids.assign(conn, worked, "visitor", "test")
        for name, grid in (("聋甲", worked), ("聋乙", unworked)):
            conn.execute(update(residents).where(residents.c.name == name).values(grid=grid))
    announcement_id = released(app, areas=[TOWN])
    with app.app_context(), app.extensions["engine"].connect() as conn:
        result = preview.preview(conn, row_of(conn, announcement_id))
        thin = preview.thin_residents(conn, row_of(conn, announcement_id), TOWN, "18-39",
                                      "hearing")
    hearing = by_key(result)[("18-39", "hearing")]
    assert (hearing["residents"], hearing["paths"], hearing["fewer_than_two_channels"]) == \
        (3, {"1": 1, "2": 2}, 1)
    assert hearing["suggestions"] == [
        {"add": "grid_worker", "village": SPEAKER, "grid": unworked, "residents": 1}]
    assert [(p["name"], p["paths"], p["add"]) for p in thin] == [("聋乙", ["phone"], "grid_worker")]
    plan(app, announcement_id)
    with app.extensions["engine"].connect() as conn:
        sent = conn.execute(select(audit_log.c.detail).where(audit_log.c.action == "send")).one()
    assert json.loads(sent.detail)["thin_residents"] == 4


def test_the_disclosure_report_counts_each_segment_and_equals_the_status(app, segments_county):
    announcement_id = planned(app, areas=[TOWN], severity="severe")
    rows = by_address(app, announcement_id)

    def ids(*keys):
        return [rows[key].id for key in keys]

    firsts = [("wechat", openid("young none")), ("wechat", openid("young speaker")),
              ("sms", phone("deaf wechat none")), ("wechat", openid("deaf wechat none")),
              ("sms", phone("deaf phone speaker")), ("voice", phone("blind none")),
              ("sms", phone("blind speaker")), ("sms", phone("elderly speaker"))]
    hand_over(app, announcement_id, ids(*firsts, ("loudspeaker", "spk-pilot")))
    hand_over(app, announcement_id, ids(("sms", phone("deaf phone none"))), "failed")
    reach(app, ids(*firsts[:5], firsts[6], firsts[7]))  # delivered
    reach(app, ids(("voice", phone("blind none"))), "confirmed")  # pressed 1
    reach(app, ids(("sms", phone("elderly speaker"))), "confirmed")  # replied 1
    reach(app, ids(("loudspeaker", "spk-pilot")), "confirmed")  # played
    seconds = {"young none": 30, "young speaker": 60, "deaf wechat none": 10,
               "deaf phone speaker": 120, "blind none": 200, "blind speaker": 20,
               "elderly speaker": 40}
    with app.app_context(), app.extensions["engine"].begin() as conn:
        announcement = row_of(conn, announcement_id)
        ids_by_name = dict(conn.execute(select(residents.c.name, residents.c.id)).all())
        for key, after in seconds.items():
            conn.execute(update(reached).where(reached.c.announcement_id == announcement_id,
                                               reached.c.recipient_id == ids_by_name[
                                                   PEOPLE[key][0]])
                         .values(reached_at=announcement.sent + timedelta(seconds=after)))
        data = disclosure.report(conn, announcement)
        status = reports.status(conn, announcement)
    wanted = {  # targeted, reached, first sms/voice/wechat, confirmed, unconfirmed, not reached, 50 %, 90 %
        ("18-39", "none"): (2, 2, 0, 0, 2, 0, 0, 0, 30.0, 60.0),
        ("18-39", "hearing"): (3, 2, 2, 0, 0, 0, 0, 1, 120.0, None),
        ("40-64", "visual"): (2, 2, 1, 1, 0, 1, 1, 0, 20.0, 200.0),
        ("65+", "none"): (2, 1, 1, 0, 0, 1, 0, 1, 40.0, None),
    }
    columns = ("targeted", "reached", "first_sms", "first_voice", "first_wechat", "confirmed",
               "unconfirmed", "not_reached", "seconds_to_50", "seconds_to_90")
    assert {(s["age_band"], s["impairment"]): tuple(s[c] for c in columns)
            for s in data["segments"]} == wanted
    assert all(s["town"] == TOWN for s in data["segments"])
    assert tuple(data["total"][c] for c in columns) == (9, 7, 4, 1, 2, 2, 1, 2, 60.0, None)
    # The same numbers as the status API.
    assert (status["reached_residents"], status["confirmed_residents"],
            status["unconfirmed_residents"], status["not_reached_residents"]) == \
        (data["total"]["reached"], data["total"]["confirmed"], data["total"]["unconfirmed"],
         data["total"]["not_reached"])
    assert data["villages"] == [
        {"village": SPEAKER, "targeted": 4, "reached": 4, "loudspeakers": 1, "played": 1,
         "failed": 0},
        {"village": NONE, "targeted": 5, "reached": 3, "loudspeakers": 0, "played": 0,
         "failed": 0}]


def test_the_api_gives_the_report_and_admins_the_thin_residents(app, segments_county, api):
    announcement_id = planned(app, areas=[TOWN])
    rows = by_address(app, announcement_id)
    delivered = [rows[("sms", phone("blind speaker"))].id,
                 rows[("wechat", openid("young none"))].id]
    hand_over(app, announcement_id, delivered)
    reach(app, delivered)
    report = api("author").get(f"/api/v1/announcements/{announcement_id}/disclosure").get_json()
    status = api("author").get(f"/api/v1/announcements/{announcement_id}").get_json()
    assert (report["total"]["targeted"], report["total"]["reached"],
            report["total"]["not_reached"]) == (9, status["reached_residents"],
                                                status["not_reached_residents"]) == (9, 2, 7)
    weak = api("approver").get(f"/api/v1/announcements/{announcement_id}/preview").get_json()[
        "weak_segments"]
    assert weak and not any("residents_url" in s for s in weak)  # no personal data for them
    deaf = next(s for s in api("admin").get(f"/api/v1/announcements/{announcement_id}/preview")
                .get_json()["weak_segments"] if s["impairment"] == "hearing")
    assert deaf["residents_url"] == (f"/api/v1/announcements/{announcement_id}/thin?"
                                     f"town={TOWN}&age_band=18-39&impairment=hearing&language=zh")
    assert api("approver").get(deaf["residents_url"]).status_code == 403
    listed = api("admin").get(deaf["residents_url"]).get_json()["residents"]
    assert [(p["name"], p["paths"], p["add"]) for p in listed] == [
        ("聋乙", ["phone"], "grid_worker"), ("聋甲", ["phone"], "grid_worker")]
    refused = api("admin").get(deaf["residents_url"].replace("18-39", "young"))
    assert refused.status_code == 400 and refused.get_json()["field"] == "age_band"
    unsent = create(app, areas=[TOWN])  # awaiting approval
    assert api("author").get(f"/api/v1/announcements/{unsent}/disclosure").status_code == 409


def test_segments_split_by_written_language_alike_in_the_preview_and_the_report(app,
                                                                                segments_county):
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [person("Tom", NONE, phone="+8613900000010",
                                              openid="o_tom", born=1995, language="en")])
    announcement_id = planned(app, areas=[TOWN], severity="severe")
    with app.app_context(), app.extensions["engine"].connect() as conn:
        announcement = row_of(conn, announcement_id)
        report = disclosure.report(conn, announcement)
        shown = preview.preview(conn, announcement)
    in_report = {(s["age_band"], s["impairment"], s["language"]): s["targeted"]
                 for s in report["segments"]}
    assert in_report[("18-39", "none", "en")] == 1 and in_report[("18-39", "none", "zh")] == 2
    assert in_report == {(s["age_band"], s["impairment"], s["language"]): s["residents"]
                         for s in shown["segments"]}
    assert report["total"]["language"] == "*" and report["total"]["targeted"] == 10
