"""The JSON API's contract: status codes, error bodies that say what and where, the two-person rule."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from gateway.store.schema import audit_log

from tests.gateway.conftest import DISTRICT, announcement

pytestmark = pytest.mark.integration


def test_create_returns_id_and_state(api):
    response = api("author").post("/api/v1/announcements", json=announcement(severity="Severe"))
    assert response.status_code == 201
    assert response.json["state"] == "awaiting_approval" and response.json["id"] > 0
    status = api("author").get(f"/api/v1/announcements/{response.json['id']}").json
    assert status["severity"] == "severe" and status["deliveries"] == {}


def test_translations_are_stored_with_the_announcement(api):
    english = {"language": "en", "headline": "Rainstorm", "body": "Heavy rain."}
    created = api("author").post("/api/v1/announcements",
                                 json=announcement(translations=[english])).json
    status = api("author").get(f"/api/v1/announcements/{created['id']}").json
    assert (status["languages"], status["headline"]) == (["zh", "en"], "暴雨红色预警")
    plain = api("author").post("/api/v1/announcements", json=announcement()).json
    assert api("author").get(f"/api/v1/announcements/{plain['id']}").json["languages"] == ["zh"]


@pytest.mark.parametrize("headers, status, message", [
    ({}, 401, "send an API token"),
    ({"Authorization": "Bearer nope"}, 401, "not valid"),
    ({"Authorization": "Basic abc"}, 401, "send an API token"),
])
def test_requests_without_a_good_token_are_refused(app, county, headers, status, message):
    response = app.test_client().get("/api/v1/residents", headers=headers)
    assert response.status_code == status and message in response.json["error"]


@pytest.mark.parametrize("kwargs, status, field, message", [
    ({"data": "{not json", "content_type": "application/json"}, 400, None, "must be a JSON object"),
    ({"data": "headline=x", "content_type": "application/x-www-form-urlencoded"}, 400, None,
     "must be a JSON object"),
    ({"json": [1, 2]}, 400, None, "not a list"),
    ({"json": announcement(headline=None)}, 422, "headline", "is required"),
    ({"json": announcement(severity="big")}, 422, "severity", "is not one of"),
    ({"json": announcement(areas=["450799"])}, 422, "areas[0]", "450799 is not in the area registry"),
    ({"json": announcement(areas=["45"])}, 422, "areas[0]", "is not an administrative code"),
    ({"json": announcement(msg_type="update")}, 422, "references", "must name the announcement"),
    ({"json": announcement(msg_type="update", references="nope")}, 422, "references",
     "names no known announcement"),
    ({"json": announcement(expires=12)}, 422, "expires", "ISO 8601"),
    ({"json": announcement(translations=[{"language": "en", "headline": "Rainstorm"}])}, 422,
     "translations[0].body", "is required"),
    ({"json": announcement(translations=[{"language": "zh", "headline": "x", "body": "y"}])}, 422,
     "translations[0].language", "the announcement's own language"),
])
def test_bad_announcements_are_refused_with_what_and_where(api, kwargs, status, field, message):
    response = api("author").post("/api/v1/announcements", **kwargs)
    assert response.status_code == status, response.json
    assert message in response.json["error"]
    assert response.json.get("field") == field


def test_two_person_rule(api):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    path = f"/api/v1/announcements/{created['id']}/approve"
    assert api("author").post(path).status_code == 403  # authors do not approve
    admin_own = api("admin").post("/api/v1/announcements", json=announcement()).json
    refused = api("admin").post(f"/api/v1/announcements/{admin_own['id']}/approve")
    assert refused.status_code == 403 and "two-person rule" in refused.json["error"]
    assert api("approver").post(path).status_code == 200
    again = api("approver").post(path)
    assert again.status_code == 409 and "not awaiting approval" in again.json["error"]


def test_a_drill_may_be_approved_by_its_author_when_an_approver(api):
    drill = api("approver").post("/api/v1/announcements", json=announcement(status="test")).json
    assert api("approver").post(f"/api/v1/announcements/{drill['id']}/approve").status_code == 200


def test_a_draft_cannot_be_approved(api):
    draft = api("author").post("/api/v1/announcements", json=announcement(status="draft")).json
    assert draft["state"] == "draft"
    assert api("approver").post(f"/api/v1/announcements/{draft['id']}/approve").status_code == 409


def test_reject_needs_a_reason_and_only_approvers_may(api):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    path = f"/api/v1/announcements/{created['id']}/reject"
    assert api("author").post(path, json={"reason": "no"}).status_code == 403
    assert api("approver").post(path, json={"reason": " "}).json["field"] == "reason"
    done = api("approver").post(path, json={"reason": "wrong district"})
    assert done.json == {"id": created["id"], "state": "rejected"}


def test_cancel_rules(api):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    path = f"/api/v1/announcements/{created['id']}/cancel"
    assert api("author2").post(path, json={}).status_code == 403  # not the author
    withdrawn = api("author").post(path, json={})
    assert withdrawn.json["state"] == "cancelled" and withdrawn.json["correction_id"] is None
    sent = api("author").post("/api/v1/announcements", json=announcement()).json
    api("approver").post(f"/api/v1/announcements/{sent['id']}/approve")
    not_text = api("author").post(f"/api/v1/announcements/{sent['id']}/cancel",
                                  json={"correction": ["此预警发布有误"]})
    assert not_text.status_code == 422 and not_text.json["field"] == "correction"
    no_text = api("author").post(f"/api/v1/announcements/{sent['id']}/cancel", json={})
    assert no_text.status_code == 200  # no second person, and nothing to write
    assert no_text.json["correction_id"] and no_text.json["update_id"] is None


def test_a_correction_with_a_cancel_waits_for_approval_as_an_update(api):
    sent = api("author").post("/api/v1/announcements", json=announcement()).json
    api("approver").post(f"/api/v1/announcements/{sent['id']}/approve")
    cancelled = api("author").post(f"/api/v1/announcements/{sent['id']}/cancel",
                                   json={"correction": "雨量数据有误。"}).json
    assert cancelled["state"] == "cancelled" and cancelled["correction_id"]
    update = api("author").get(f"/api/v1/announcements/{cancelled['update_id']}").json
    assert (update["msg_type"], update["state"], update["supersedes"]) == (
        "update", "awaiting_approval", sent["id"])
    assert update["headline"] == "【更正】暴雨红色预警"


@pytest.mark.parametrize("original_status, status", [("actual", "test"), ("exercise", "actual")])
def test_an_update_with_another_status_than_its_original_is_refused(api, original_status,
                                                                    status):
    sent = api("author").post("/api/v1/announcements",
                              json=announcement(status=original_status)).json
    api("approver").post(f"/api/v1/announcements/{sent['id']}/approve")
    update = api("author").post("/api/v1/announcements", json=announcement(
        status=status, msg_type="update", references=sent["identifier"]))
    assert update.status_code == 422 and update.json["field"] == "status"
    assert "a drill never touches a real notice" in update.json["error"]


def test_unknown_announcement_and_paths(api):
    assert api("author").get("/api/v1/announcements/999").status_code == 404
    assert api("author").get("/api/v1/announcements/999").json["error"] == "there is no announcement 999"
    missing = api("author").get("/api/v1/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json
    wrong_method = api("author").get("/api/v1/announcements/1/approve")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json


ROSTER_HEADER = ("name,phone,wechat_openid,area_code,birth_year,visually_impaired,"
                 "hearing_impaired,has_smartphone,language,opt_out,test_audience\n")


def test_resident_import_is_all_or_nothing(api):
    before = api("admin").get("/api/v1/residents").json["total"]
    bad = ROSTER_HEADER + ("周杰,13900000001,,450702100201,1980,0,0,1,zh,,0\n"
                           "吴昊,not-a-phone,,450702100201,1980,0,0,1,zh,,0\n"
                           "郑爽,13900000003,,450799000000,1980,maybe,0,1,zh,,0\n")
    response = api("admin").post("/api/v1/residents/import", data=bad.encode())
    assert response.status_code == 422
    where = [(row["line"], row["column"]) for row in response.json["rows"]]
    assert (3, "phone") in where and (4, "area_code") in where and (4, "visually_impaired") in where
    assert api("admin").get("/api/v1/residents").json["total"] == before
    good = ROSTER_HEADER + "周杰,13900000001,,450702100201,1980,0,0,1,zh,,0\n"
    assert api("admin").post("/api/v1/residents/import", data=good.encode()).json["added"] == 1
    listed = api("admin").get(f"/api/v1/residents?area={DISTRICT}&per_page=2").json
    assert listed["total"] == before and len(listed["residents"]) == 2  # 1 new + 7 in 450702
    assert api("admin").get("/api/v1/residents?area=12").json["field"] == "area"
    assert api("admin").get("/api/v1/residents?page=0").status_code == 400
    assert api("admin").post("/api/v1/residents/import", data=b"").status_code == 400


def test_outbox_filter_is_checked(api):
    assert api("admin").get("/api/v1/outbox?announcement=x").json["field"] == "announcement"
    assert api("admin").get("/api/v1/outbox").json["total"] == 0


@pytest.mark.parametrize("method, path, roles", [
    ("post", "/api/v1/residents/import", ("author", "approver")),
    ("get", "/api/v1/residents", ("author", "approver")),
    ("get", "/api/v1/outbox", ("author", "approver")),
])
def test_personal_data_is_for_admins_only(api, method, path, roles):
    """Phones, birth years and impairments (PIPL: sensitive) only for admins; others get a 403."""
    test_flag = ROSTER_HEADER + "周杰,13900000001,,450702100201,1980,0,0,1,zh,,1\n"
    for role in roles:
        response = getattr(api(role), method)(path, data=test_flag.encode())
        assert response.status_code == 403, (role, response.json)
        assert "admin" in response.json["error"]
    assert getattr(api("admin"), method)(path, data=test_flag.encode()).status_code in (200, 201)


def test_the_unreached_list_is_for_approvers_and_every_export_is_audited(app, api):
    created = api("author").post("/api/v1/announcements", json=announcement(channels=["wechat"]))
    announcement_id = created.json["id"]
    api("approver").post(f"/api/v1/announcements/{announcement_id}/approve")
    path = f"/api/v1/announcements/{announcement_id}/unreached"
    refused = api("author").get(path)
    assert refused.status_code == 403 and "approver or admin" in refused.json["error"]
    assert api("author").get(path, headers={"Accept": "text/csv"}).status_code == 403
    listed = api("approver").get(path + "?per_page=2").json
    assert api("admin").get(path, headers={"Accept": "text/csv"}).mimetype == "text/csv"
    with app.extensions["engine"].connect() as conn:
        entries = conn.execute(select(audit_log).where(audit_log.c.action == "export_unreached")
                               .order_by(audit_log.c.id)).all()
    assert [(e.actor, e.target) for e in entries] == [
        ("approver", f"announcement:{announcement_id}"), ("admin", f"announcement:{announcement_id}")]
    details = [json.loads(e.detail) for e in entries]
    assert details[0] == {"via": "api", "format": "json", "rows": len(listed["residents"]),
                          "area": None} and len(listed["residents"]) == 2
    assert details[1]["format"] == "csv" and details[1]["rows"] == listed["total"]
