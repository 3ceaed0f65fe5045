"""CAP in and out, and the Atom feed, through the gateway on SQLite and PostgreSQL.

A CAP alert from another system must become one announcement an approver can send,
in each resident's language,
Update and Cancel over CAP must do what the API's update and cancel do, and what
the gateway publishes (CAP and Atom) must validate.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
import xmlschema
from sqlalchemy import func, select

from channels import outbox
from gateway.delivery import providers
from gateway.store.db import utcnow
from gateway.store.schema import announcements
from messages.cap import ATOM_SCHEMA_PATH, CAP_MEDIA_TYPE, CAP_NAMESPACE
from messages.cap.read import parse_cap
from tests.conftest import run_jobs
from tests.gateway.conftest import DISTRICT, RESIDENTS, announcement
from tests.gateway.test_fanout import ENGLISH_READERS, add_residents, planned
from tests.messages.test_cap import REFUSED, line_of

pytestmark = pytest.mark.integration

EXAMPLE = (Path(__file__).parents[1] / "messages" / "cap_examples" /
           "county-rainstorm-zh-en.xml").read_text(encoding="utf-8")
IDENTIFIER = "450702-20260601-0001"
SENDER = "yjj@qinnan.gov.cn"
SENT = "2026-06-01T08:00:00+08:00"
EXAMPLE_EXPIRES = "2026-06-02T20:00:00+08:00"
ATOM = {"atom": "http://www.w3.org/2005/Atom"}
CAP = {"cap": CAP_NAMESPACE}


def county_alert(identifier=IDENTIFIER, *, msg_type="Alert", references=(), description=None,
                 expires=None) -> bytes:
    """The county's bilingual rainstorm alert, expiring tomorrow unless told otherwise."""
    text = (EXAMPLE.replace(EXAMPLE_EXPIRES, expires or tomorrow())
            .replace(f"<identifier>{IDENTIFIER}", f"<identifier>{identifier}")
            .replace("<msgType>Alert", f"<msgType>{msg_type}"))
    if references:
        listed = " ".join(f"{SENDER},{reference},{SENT}" for reference in references)
        text = text.replace("</scope>", f"</scope>\n  <references>{listed}</references>")
    if description:
        text = re.sub("<description>.*?</description>", f"<description>{description}</description>",
                      text)
    return text.encode()


def tomorrow() -> str:
    return (utcnow() + timedelta(days=1)).replace(microsecond=0).isoformat()


def not_expired(document: bytes) -> bytes:
    """A document made from the example, its expiry moved to tomorrow (its lines unchanged)."""
    return document.replace(EXAMPLE_EXPIRES.encode(), tomorrow().encode())


def post_cap(api, document: bytes, user="author"):
    return api(user).post("/api/v1/cap", data=document, headers={"Content-Type": CAP_MEDIA_TYPE})


def with_descriptions(document: bytes, chinese: str, english: str) -> bytes:
    """The county's alert with new descriptions in its Chinese and its English block."""
    text = re.sub("<description>预计.*?</description>", f"<description>{chinese}</description>",
                  document.decode())
    return re.sub("<description>Over .*?</description>", f"<description>{english}</description>",
                  text).encode()


def receive(api, document: bytes | None = None) -> int:
    """Post an alert; the announcement it became."""
    response = post_cap(api, document or county_alert())
    assert response.status_code == 201, response.json
    return response.json["announcement"]["id"]


def approve(api, announcement_id: int) -> None:
    response = api("approver").post(f"/api/v1/announcements/{announcement_id}/approve")
    assert response.status_code == 200, response.json


def status(api, announcement_id: int) -> dict:
    return api("author").get(f"/api/v1/announcements/{announcement_id}").json


def stored_announcements(app) -> int:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(func.count()).select_from(announcements)).scalar_one()


# --- CAP in --------------------------------------------------------------------------

def test_a_bilingual_cap_alert_becomes_one_announcement_an_approver_can_send(app, api):
    response = post_cap(api, county_alert())
    assert response.status_code == 201, response.json
    assert response.json["identifier"] == IDENTIFIER
    created = response.json["announcement"]
    assert (created["identifier"], created["languages"], created["state"]) == (
        IDENTIFIER, ["zh", "en"], "awaiting_approval")
    assert stored_announcements(app) == 1
    stored = status(api, created["id"])
    assert (stored["headline"], stored["severity"], stored["status"], stored["msg_type"]) == (
        "暴雨橙色预警：请做好防范", "severe", "actual", "alert")
    assert stored["areas"] == ["450702", "450703"]

    add_residents(app, *ENGLISH_READERS)
    approve(api, created["id"])
    run_jobs(app)
    ledger = planned(app, created["id"])
    assert {status for channel in ("sms", "voice", "wechat") for _, status in ledger[channel]} == {
        "delivered"}
    assert {address for address, _ in ledger["loudspeaker"]} == {"spk-a", "spk-b", "spk-other"}
    assert status(api, created["id"])["reached_residents"] == len(RESIDENTS) + len(ENGLISH_READERS)


def test_approving_a_bilingual_alert_sends_each_resident_one_message_in_their_language(app, api):
    add_residents(app, *ENGLISH_READERS)
    announcement_id = receive(api)
    approve(api, announcement_id)
    run_jobs(app)
    records, _ = outbox.read(providers.outbox_path(app), announcement_id=announcement_id)
    sms = {record["address"]: record for record in records if record["channel"] == "sms"}
    assert len(sms) == len([r for r in records if r["channel"] == "sms"])  # one each
    english = sms.pop(ENGLISH_READERS[1].phone)
    assert english["language"] == "en"
    assert "Orange rainstorm warning" in english["text"] and "暴雨" not in english["text"]
    assert sms and all(record["language"] == "zh" and "暴雨橙色预警" in record["text"]
                       and "Orange" not in record["text"] for record in sms.values())
    wechat = [r for r in records if r["address"] == ENGLISH_READERS[0].wechat_openid]
    assert [r["language"] for r in wechat] == ["en"]


def test_an_alert_posted_by_an_approver_still_needs_a_second_person(app, api):
    response = post_cap(api, county_alert(), user="approver")
    chinese = response.json["announcement"]["id"]
    refused = api("approver").post(f"/api/v1/announcements/{chinese}/approve")
    assert refused.status_code == 403 and "two-person rule" in refused.json["error"]


@pytest.mark.parametrize("case", ["missing event", "wrong urgency", "unknown language",
                                  "XXE: external entity", "billion laughs", "external DTD",
                                  "not XML at all", "no administrative geocode"])
def test_a_refused_document_gets_400_with_the_reason_and_its_line_and_nothing_is_stored(
        app, api, case):
    [(document, words, line)] = [refused[1:] for refused in REFUSED if refused[0] == case]
    response = post_cap(api, not_expired(document))
    assert response.status_code == 400
    assert words in response.json["error"]
    assert response.json["line"] == (line_of(document, line) if isinstance(line, str) else line)
    assert stored_announcements(app) == 0


def test_a_ten_megabyte_body_is_refused_before_it_is_read(app, api):
    document = county_alert(description="雨" * (10 * 1024 * 1024 // 3))
    response = post_cap(api, document)
    assert response.status_code == 413
    assert response.json["error"] == ("the CAP document is larger than the limit of 1000000 bytes; "
                                      "nothing was stored")
    assert stored_announcements(app) == 0


def test_an_expired_alert_is_refused(app, api):
    response = post_cap(api, county_alert(expires="2020-06-02T20:00:00+08:00"))
    assert response.status_code == 400 and "expires: is already past" in response.json["error"]
    assert stored_announcements(app) == 0


def test_cap_needs_an_api_token(app, api):
    response = app.test_client().post("/api/v1/cap", data=county_alert())
    assert response.status_code == 401 and "Bearer" in response.json["error"]


def test_an_alert_received_twice_is_refused_the_second_time(app, api):
    receive(api)
    again = post_cap(api, county_alert())
    assert again.status_code == 409 and again.json["field"] == "identifier"
    assert stored_announcements(app) == 1


def test_areas_missing_from_the_registry_are_refused_like_the_apis(app, api):
    document = county_alert().replace(b"<value>450703</value>", b"<value>450799</value>")
    response = post_cap(api, document)
    assert response.status_code == 422
    assert response.json == {"error": "450799 is not in the area registry", "field": "areas[1]"}
    assert stored_announcements(app) == 0


@pytest.mark.parametrize("field, first_block, other_block", [
    ("areas", b"<value>450703</value>", b"<value>450702100</value>"),
    ("severity", b"<severity>Severe</severity>", b"<severity>Extreme</severity>"),
])
def test_blocks_that_disagree_on_areas_or_severity_are_refused(app, api, field, first_block,
                                                                other_block):
    document = county_alert()
    english = document.rindex(first_block)  # the English block's
    document = document[:english] + other_block + document[english + len(first_block):]
    response = post_cap(api, document)
    assert response.status_code == 400 and response.json["field"] == field
    assert response.json["error"].startswith(f"info[2] (en) differs from the first <info> in "
                                             f"its {field}")
    assert stored_announcements(app) == 0


# --- Update and Cancel over CAP --------------------------------------------------------

def test_an_update_over_cap_supersedes_the_alert_once_approved(app, api):
    original = receive(api)
    approve(api, original)
    run_jobs(app)
    response = post_cap(api, county_alert("450702-20260601-0002", msg_type="Update",
                                          references=[IDENTIFIER], description="雨势加强。"))
    assert response.status_code == 201, response.json
    update = response.json["announcement"]
    assert (update["state"], update["languages"]) == ("awaiting_approval", ["zh", "en"])
    assert status(api, update["id"])["supersedes"] == original
    assert status(api, update["id"])["msg_type"] == "update"

    approve(api, update["id"])
    run_jobs(app)
    assert status(api, original)["state"] == "superseded"
    assert status(api, original)["superseded_by"] == [update["id"]]
    assert status(api, update["id"])["state"] == "done"


def test_a_cancel_over_cap_withdraws_at_once_and_tells_everyone_reached_in_fixed_words(app, api):
    add_residents(app, *ENGLISH_READERS)
    original = receive(api)
    approve(api, original)
    run_jobs(app)
    reached = planned(app, original)
    cancel = with_descriptions(county_alert("450702-20260601-0003", msg_type="Cancel",
                                            references=[IDENTIFIER]),
                               "此预警发布有误。", "This warning was issued in error.")
    response = post_cap(api, cancel)
    assert response.status_code == 201, response.json
    [cancelled] = response.json["cancelled"]
    assert (cancelled["id"], cancelled["state"]) == (original, "cancelled")

    run_jobs(app)
    correction = planned(app, cancelled["correction_id"])
    assert {a for a, _ in correction["sms"]} == {a for a, _ in reached["sms"]}
    records, _ = outbox.read(providers.outbox_path(app),
                             announcement_id=cancelled["correction_id"])
    english = [r for r in records if r["address"] == ENGLISH_READERS[1].phone]
    chinese = [r for r in records if r["language"] == "zh"]
    # The Cancel's own text was approved by no one here: the fixed wording goes out instead.
    assert english and all("Withdrawn: the notice “Orange rainstorm warning" in r["text"]
                           and "issued in error" not in r["text"] for r in english)
    assert chinese and all("此前发布的通知已撤销" in r["text"]  # WeChat's card cuts the rest
                           and "此预警发布有误" not in r["text"] for r in chinese)
    assert len(english) + len(chinese) + 1 == len(records)  # and the English WeChat follower's
    assert status(api, original)["superseded_by"] == [cancelled["correction_id"]]


def test_a_cancel_of_a_withdrawn_alert_is_refused(app, api):
    receive(api)
    cancel = county_alert("450702-20260601-0003", msg_type="Cancel", references=[IDENTIFIER])
    assert post_cap(api, cancel).status_code == 201
    again = post_cap(api, cancel.replace(b"-0003<", b"-0004<"))
    assert again.status_code == 409 and "already withdrawn" in again.json["error"]


@pytest.mark.parametrize("original_status, referencing", [
    ("Actual", "Test"), ("Actual", "Exercise"), ("Exercise", "Actual")])
@pytest.mark.parametrize("msg_type", ["Update", "Cancel"])
def test_a_drill_never_updates_or_cancels_a_real_alert_nor_the_reverse(app, api, msg_type,
                                                                       original_status,
                                                                       referencing):
    original = receive(api, county_alert().replace(b"<status>Actual",
                                                   f"<status>{original_status}".encode()))
    approve(api, original)
    response = post_cap(api, county_alert("450702-20260601-0006", msg_type=msg_type,
                                          references=[IDENTIFIER]).replace(
        b"<status>Actual", f"<status>{referencing}".encode()))
    assert response.status_code == 422 and response.json["field"] == "status"
    assert (f"status {referencing.lower()} differs from the {original_status.lower()} status"
            in response.json["error"])
    assert stored_announcements(app) == 1
    assert status(api, original)["state"] == "approved"


@pytest.mark.parametrize("msg_type", ["Update", "Cancel"])
def test_unknown_referenced_alerts_are_named_and_nothing_is_stored(app, api, msg_type):
    original = receive(api)
    response = post_cap(api, county_alert("450702-20260601-0005", msg_type=msg_type,
                                          references=[IDENTIFIER, "450702-unknown-1"]))
    assert response.status_code == 422
    assert response.json["unknown"] == ["450702-unknown-1"]
    assert "450702-unknown-1" in response.json["error"]
    assert stored_announcements(app) == 1
    assert status(api, original)["state"] == "awaiting_approval"


# --- CAP out -------------------------------------------------------------------------

def test_cap_in_and_out_again_preserves_every_mapped_field_in_both_languages(app, api):
    document = county_alert()
    received = receive(api, document)
    approve(api, received)
    response = app.test_client().get(f"/api/v1/announcements/{received}.cap")
    assert response.status_code == 200 and response.mimetype == CAP_MEDIA_TYPE
    sent_back, original = parse_cap(response.data), parse_cap(document)
    assert (sent_back.identifier, sent_back.sender, sent_back.status, sent_back.msg_type) == (
        original.identifier, original.sender, original.status, original.msg_type)
    assert [info.language for info in sent_back.infos] == ["zh", "en"]
    assert sent_back.infos == original.infos
    assert app.test_client().get(f"/cap/{received}.xml").data == response.data


def test_cap_out_names_areas_and_links_the_public_page(app, api):
    created = api("author").post("/api/v1/announcements", json=announcement(event="暴雨")).json
    approve(api, created["id"])
    document = app.test_client().get(f"/api/v1/announcements/{created['id']}.cap").data
    root = ET.fromstring(document)
    assert root.findtext("cap:identifier", namespaces=CAP) == created["identifier"]
    assert root.findtext("cap:info/cap:area/cap:areaDesc", namespaces=CAP) == "钦南区"
    assert root.findtext("cap:info/cap:area/cap:geocode/cap:value", namespaces=CAP) == DISTRICT
    assert root.findtext("cap:info/cap:web", namespaces=CAP) == \
        f"{app.config['PUBLIC_BASE_URL']}/a/{created['id']}"
    [info] = parse_cap(document).infos
    assert (info.headline, info.body, info.severity, info.areas) == (
        "暴雨红色预警", "预计未来3小时有特大暴雨。", "moderate", [DISTRICT])


def test_a_correction_is_published_as_a_cap_cancel_referencing_the_original(app, api):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    approve(api, created["id"])
    run_jobs(app)
    cancelled = api("author").post(f"/api/v1/announcements/{created['id']}/cancel").json
    document = app.test_client().get(f"/api/v1/announcements/{cancelled['correction_id']}.cap")
    alert = parse_cap(document.data)
    assert alert.msg_type == "cancel"
    assert alert.infos[0].body.startswith("此前发布的通知已撤销：“暴雨红色预警”（")
    assert [reference.split(",")[:2] for reference in alert.references.split()] == [
        [app.config["CAP_SENDER"], created["identifier"]]]


def test_translations_made_with_the_api_are_published_as_further_info_blocks(app, api):
    english = {"language": "en", "headline": "Red rainstorm warning", "event": "Rainstorm",
               "body": "Torrential rain within 3 hours."}
    created = api("author").post("/api/v1/announcements", json=announcement(
        event="暴雨", translations=[english])).json
    approve(api, created["id"])
    chinese, translated = parse_cap(
        app.test_client().get(f"/api/v1/announcements/{created['id']}.cap").data).infos
    assert (chinese.language, chinese.headline, chinese.event) == ("zh", "暴雨红色预警", "暴雨")
    assert (translated.language, translated.headline, translated.body, translated.event,
            translated.instruction) == ("en", "Red rainstorm warning",
                                        "Torrential rain within 3 hours.", "Rainstorm", "")
    assert (translated.areas, translated.severity) == (chinese.areas, chinese.severity)


def test_the_public_page_shows_every_language(app, api):
    announcement_id = receive(api)
    approve(api, announcement_id)
    html = app.test_client().get(f"/a/{announcement_id}").get_data(as_text=True)
    for text in ("暴雨橙色预警：请做好防范", "Orange rainstorm warning: take precautions",
                 "Keep away from rivers and low-lying ground"):
        assert text in html
    assert 'lang="en"' in html


def test_announcements_not_yet_approved_are_not_public(app, api):
    received = receive(api)
    draft = api("author").post("/api/v1/announcements", json=announcement(status="draft")).json
    public = app.test_client()
    for announcement_id in (received, draft["id"]):
        assert public.get(f"/api/v1/announcements/{announcement_id}.cap").status_code == 401
        assert public.get(f"/cap/{announcement_id}.xml").status_code == 401
        with_token = api("author").get(f"/api/v1/announcements/{announcement_id}.cap")
        assert with_token.status_code == 200 and parse_cap(with_token.data)
    assert public.get("/api/v1/announcements/999.cap").status_code == 404


# --- the Atom feed -------------------------------------------------------------------

def feed_entries(app) -> dict[str, str]:
    """Entry id -> CAP link, after checking the feed against the Atom schema."""
    response = app.test_client().get("/feeds/alerts.atom")
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    xmlschema.XMLSchema(str(ATOM_SCHEMA_PATH)).validate(response.data.decode())
    feed = ET.fromstring(response.data)
    return {entry.findtext("atom:id", namespaces=ATOM):
            entry.find("atom:link[@type='application/cap+xml']", ATOM).get("href")
            for entry in feed.findall("atom:entry", ATOM)}


def test_the_feed_lists_sent_alerts_with_their_cap_links_and_nothing_else(app, api):
    received = receive(api)
    drill = api("author").post("/api/v1/announcements", json=announcement(status="Exercise")).json
    for announcement_id in (received, drill["id"]):
        approve(api, announcement_id)
    run_jobs(app)
    base = app.config["PUBLIC_BASE_URL"]
    assert feed_entries(app) == {f"{base}/a/{received}":
                                 f"{base}/api/v1/announcements/{received}.cap"}
    cap_link = feed_entries(app)[f"{base}/a/{received}"].removeprefix(base)
    assert parse_cap(app.test_client().get(cap_link).data).identifier == IDENTIFIER


def test_a_cancelled_alert_leaves_the_feed(app, api):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    approve(api, created["id"])
    run_jobs(app)
    assert len(feed_entries(app)) == 1
    api("author").post(f"/api/v1/announcements/{created['id']}/cancel",
                       json={"correction": "此预警发布有误，请忽略。"})
    run_jobs(app)
    assert feed_entries(app) == {}
