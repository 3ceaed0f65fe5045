"""Hostile input at every door answers 4xx with a message, never a 500 (issue 15, item 6).

Each value here gave a 500 once: a body too large, JSON nested too deep, a lone
surrogate, an expiry in year 9999 that overflows when moved to UTC, page numbers
and ids past what a database integer holds, headlines of invisible characters.
The API and CAP answer JSON (``{"error": …}``); the console answers its error page
or the form with the problem named; signed Twilio webhooks answer 404.
"""
from __future__ import annotations

import io
import json
import logging

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from gateway.store.schema import announcements
from tests.gateway.conftest import announcement
from tests.gateway.console.conftest import compose_form, csrf_token, login
from tests.gateway.test_interop import county_alert, post_cap

pytestmark = pytest.mark.integration

HUGE = "99999999999999999999999"          # past SQLite's and PostgreSQL's 64-bit integers
PAST_BIGINT = str(2 ** 63)                  # the first id PostgreSQL's bigint cannot hold
HUGE_PAGE = "99999999999999999999"
TWILIO_TOKEN = "bounded-input-token"
DEEP = 200                                  # far past the nesting limit, short of Python's stack
INVISIBLE_HEADLINES = {
    "zero-width space": "\u200b\u200b\u200b",
    "zero-width joiners": "\u200c\u200d\u2060",
    "bidi overrides": "\u202a\u202b\u202c\u202d\u202e",
    "bidi isolates": "\u2066\u2067\u2068\u2069",
    "NUL": "\x00\x00",
    "control characters": "\x01\x07\x1b\x7f\x85",
    "byte order mark": "\ufeff",
    "mixed": "\u200b\ufeff\u202e\x00 \u2066",
}


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url, TWILIO_AUTH_TOKEN=TWILIO_TOKEN)


def api_refused(response, status=None, *, message=""):
    """A 4xx (exactly ``status`` when given) with a JSON error that says something."""
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:500])
    if status is not None:
        assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.is_json, response.get_data(as_text=True)[:500]
    assert response.json["error"].strip(), response.json
    assert message in response.json["error"], response.json
    return response.json


def console_refused(response, status=None, *, message=""):
    """A 4xx page of the console naming the problem (its error page or the form's error)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data()[:500])
    if status is not None:
        assert response.status_code == status
    page = response.get_data(as_text=True)
    assert "flash-error" in page or 'class="error' in page, page[:2000]
    assert message in page, page[:3000]
    return page


# --- the JSON API -------------------------------------------------------------------

def nested(depth: int):
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


def written(**fields) -> str:
    """An announcement as JSON text, each given value written as it is (e.g. a lone surrogate's
    escape, which ``json.dumps`` would never write)."""
    placeholders = {name: f"@{name}@" for name in fields}
    text = json.dumps(announcement(**placeholders))
    for name, raw in fields.items():
        text = text.replace(json.dumps(placeholders[name]), raw)
    return text


@pytest.mark.parametrize("body, status, message", [
    pytest.param(json.dumps(announcement(body="雨" * 300_000)), 413, "262144 bytes", id="too large"),
    pytest.param(json.dumps(announcement(headline=nested(DEEP))), 400, "nested", id="deep list"),
    pytest.param('{"a":' * DEEP + "1" + "}" * DEEP, 400, "nested", id="deep objects"),
    pytest.param('[' * 100_000 + ']' * 100_000, 400, "nested", id="deeper than Python's stack"),
    pytest.param(written(headline='"x\\ud800y"'), 400, "surrogate", id="lone surrogate"),
    pytest.param(written(event='"\\udfff"'), 400, "surrogate", id="lone low surrogate"),
    pytest.param(written(translations='[{"language": "en", "headline": "a\\ud83d", "body": "b"}]'),
                 400, "surrogate", id="lone surrogate in a translation"),
    pytest.param('{"\\ud800": 1}', 400, "surrogate", id="lone surrogate in a key"),
])
def test_hostile_announcements_are_refused(api, body, status, message):
    response = api("author").post("/api/v1/announcements", data=body,
                                  headers={"Content-Type": "application/json"})
    api_refused(response, status, message=message)


@pytest.mark.parametrize("expires, message", [
    ("9999-12-31T23:59:59-08:00", "out of range"),  # past year 9999 once in UTC
    ("9999-12-31T23:59:59+08:00", "years ahead"),   # the console's China time would overflow
    ("9999-12-31T23:59:59+00:00", "years ahead"),
    ("0001-01-01T00:00:00+08:00", "out of range"),   # before year 1 once in UTC
    ("2001-01-01T00:00:00+08:00", "already past"),
])
def test_expiries_out_of_range_are_refused(api, expires, message):
    response = api("author").post("/api/v1/announcements", json=announcement(expires=expires))
    assert api_refused(response, 422, message=message)["field"] == "expires"


@pytest.mark.parametrize("reference", [HUGE, PAST_BIGINT, "²", "0"])
def test_updates_referencing_numbers_no_announcement_has_are_refused(api, reference):
    response = api("author").post("/api/v1/announcements",
                                  json=announcement(msg_type="update", references=reference))
    assert api_refused(response, 422, message="names no known announcement")["field"] == \
        "references"


@pytest.mark.parametrize("name, headline", INVISIBLE_HEADLINES.items())
def test_headlines_of_invisible_characters_are_refused(api, name, headline):
    response = api("author").post("/api/v1/announcements", json=announcement(headline=headline))
    body = api_refused(response, 422, message="visible")
    assert body["field"] == "headline"


def test_control_characters_are_taken_out_of_notice_text(app, api):
    created = api("author").post("/api/v1/announcements", json=announcement(
        headline="暴雨\x00红色\u202e预警\x07\n", body="预计\x00未来\r\n3小时\t有特大暴雨。\x1b",
        instruction="\u2066请\ufeff转移\u2069")).json
    with app.extensions["engine"].connect() as conn:
        row = conn.execute(select(announcements).where(announcements.c.id == created["id"])).one()
    assert (row.headline, row.body, row.instruction) == ("暴雨红色预警", "预计未来\r\n3小时\t有特大暴雨。",
                                                         "请转移")


@pytest.mark.parametrize("path, field", [("reject", "reason"), ("cancel", "correction")])
def test_control_characters_are_taken_out_of_reasons_and_corrections(app, api, path, field):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    if path == "cancel":
        assert api("approver").post(f"/api/v1/announcements/{created['id']}/approve").status_code == 200
    response = api("approver").post(f"/api/v1/announcements/{created['id']}/{path}",
                                    json={field: "数据\x00有误\u202e"})
    assert response.status_code == 200, response.json
    with app.extensions["engine"].connect() as conn:
        notes = conn.execute(select(announcements.c.decision_note, announcements.c.body)).all()
    assert "数据有误" in {text for row in notes for text in row}


@pytest.mark.parametrize("path", [
    "/api/v1/announcements/{id}/reject", "/api/v1/announcements/{id}/cancel",
])
@pytest.mark.parametrize("body, status, message", [
    pytest.param('{"reason": "' + "x" * 300_000 + '"}', 413, "262144 bytes", id="too large"),
    pytest.param('{"reason": ' + '[' * DEEP + ']' * DEEP + '}', 400, "nested", id="deep"),
    pytest.param('{"reason": "x\\ud800y", "correction": "x\\ud800y"}', 400, "surrogate",
                 id="lone surrogate"),
])
def test_hostile_bodies_of_actions_are_refused(api, path, body, status, message):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    response = api("approver").post(path.format(id=created["id"]), data=body,
                                    headers={"Content-Type": "application/json"})
    api_refused(response, status, message=message)


@pytest.mark.parametrize("method, path", [
    ("get", "/api/v1/announcements/{id}"),
    ("post", "/api/v1/announcements/{id}/approve"),
    ("post", "/api/v1/announcements/{id}/reject"),
    ("post", "/api/v1/announcements/{id}/cancel"),
    ("get", "/api/v1/announcements/{id}/preview"),
    ("get", "/api/v1/announcements/{id}/unreached"),
    ("get", "/api/v1/announcements/{id}.cap"),
])
@pytest.mark.parametrize("number", [HUGE, PAST_BIGINT])
def test_huge_ids_in_api_paths_are_not_found(api, method, path, number):
    response = getattr(api("admin"), method)(path.format(id=number), json={"reason": "x"})
    api_refused(response, 404)


@pytest.mark.parametrize("query", [
    f"page={HUGE_PAGE}", f"per_page={HUGE_PAGE}", "page=-1", "page=1e3",
])
@pytest.mark.parametrize("path", ["/api/v1/residents", "/api/v1/outbox"])
def test_huge_page_numbers_in_api_lists_are_refused(api, path, query):
    api_refused(api("admin").get(f"{path}?{query}"), 400)


def test_huge_filters_of_api_lists_find_nothing(api):
    assert api("admin").get(f"/api/v1/outbox?announcement={HUGE}").json["total"] == 0
    api_refused(api("admin").get(f"/api/v1/residents?area={HUGE}"), 400)


def test_huge_page_numbers_of_the_unreached_list_are_refused(api):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    response = api("approver").get(f"/api/v1/announcements/{created['id']}/unreached"
                                   f"?page={HUGE_PAGE}")
    api_refused(response, 400)


def test_an_unexpected_error_in_the_api_is_json_with_an_error_id(app, api, monkeypatch, caplog):
    from gateway.delivery import reports

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(reports, "status", broken)
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    with caplog.at_level(logging.ERROR):
        response = api("author").get(f"/api/v1/announcements/{created['id']}")
    assert response.status_code == 500 and response.is_json
    error_id = response.json["error_id"]
    assert error_id in response.json["error"] and "a bug" not in response.json["error"]
    assert any(error_id in record.getMessage() and record.exc_info for record in caplog.records)


# --- CAP -----------------------------------------------------------------------------

@pytest.mark.parametrize("old, new, message", [
    pytest.param("<headline>暴雨橙色预警：请做好防范", "<headline>&#x200B;&#x202E;&#xFEFF;",
                 "visible", id="invisible headline"),
    pytest.param("<headline>暴雨橙色预警：请做好防范", "<headline>&#xD800;", "", id="surrogate"),
    pytest.param("<headline>暴雨橙色预警：请做好防范", "<headline>&#x0;", "", id="NUL"),
    pytest.param("<headline>", "<a>" * 100_000 + "</a>" * 100_000 + "<headline>", "not valid CAP",
                 id="elements nested 100,000 deep"),
    pytest.param("<expires>", "<expires>9999-12-31T23:59:59-08:00</expires><x>", "expires",
                 id="year 9999 west"),
    pytest.param("<expires>", "<expires>9999-12-31T23:59:59+08:00</expires><x>", "expires",
                 id="year 9999 east"),
])
def test_hostile_cap_is_refused(api, old, new, message):
    document = county_alert().decode()
    assert old in document
    if new.endswith("<x>"):  # replace the whole first <expires> element
        start = document.index(old)
        end = document.index("</expires>", start) + len("</expires>")
        document = document[:start] + new[:-len("<x>")] + document[end:]
    else:
        document = document.replace(old, new, 1)
    api_refused(post_cap(api, document.encode()), message=message)


def test_a_cap_document_over_its_limit_is_refused(api):
    document = county_alert().replace(b"</alert>", b"<!--" + b"x" * 1_100_000 + b"--></alert>")
    api_refused(post_cap(api, document), 413, message="larger than the limit")


@pytest.mark.parametrize("number", [HUGE, PAST_BIGINT])
def test_huge_ids_of_public_cap_documents_are_not_found(app, county, number):
    response = app.test_client().get(f"/cap/{number}.xml")
    assert response.status_code == 404


# --- Twilio webhooks -------------------------------------------------------------------

def signed_post(app, path, params):
    url = app.config["PUBLIC_BASE_URL"].rstrip("/") + path
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    return app.test_client().post(path, data=params, headers={"X-Twilio-Signature": signature})


@pytest.mark.parametrize("path, params", [
    ("/webhooks/twilio/sms/{id}", {"MessageSid": "SM1", "MessageStatus": "delivered"}),
    ("/webhooks/twilio/voice/{id}", {"CallSid": "CA1", "CallStatus": "completed"}),
    ("/webhooks/twilio/voice/{id}?event=gather", {"CallSid": "CA1", "Digits": "1"}),
])
@pytest.mark.parametrize("number", [HUGE, PAST_BIGINT])
def test_huge_ids_in_webhook_paths_are_not_found(app, county, path, params, number):
    response = signed_post(app, path.format(id=number), params)
    assert response.status_code == 404, response.get_data(as_text=True)[:500]
    assert response.get_data(as_text=True).strip()


def test_a_huge_webhook_body_is_refused(app, county):
    response = signed_post(app, "/webhooks/twilio/inbound",
                           {"From": "+8613800000011", "Body": "x" * 300_000})
    assert response.status_code == 413


# --- the console ---------------------------------------------------------------------

@pytest.fixture
def admin(app, county):
    client = app.test_client()
    login(client, "admin")
    return client


@pytest.mark.parametrize("path", [
    "/announcements/{id}", "/announcements/{id}/progress.json", "/announcements/{id}/approve",
    "/announcements/{id}/unreached", "/announcements/{id}/unreached.csv",
    "/residents/{id}/edit", "/announcements/new?update_of={id}",
])
@pytest.mark.parametrize("number", [HUGE, PAST_BIGINT])
def test_huge_ids_in_console_paths_are_refused(admin, path, number):
    console_refused(admin.get(path.format(id=number)))


@pytest.mark.parametrize("number", [HUGE, PAST_BIGINT])
def test_huge_ids_of_public_pages_are_not_found(app, county, number):
    response = app.test_client().get(f"/a/{number}")
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/residents", "/audit", "/outbox"])
@pytest.mark.parametrize("page", [HUGE_PAGE, PAST_BIGINT, "-5", "x"])
def test_huge_page_numbers_in_console_lists_are_clamped(admin, path, page):
    response = admin.get(f"{path}?page={page}")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]


def test_a_huge_announcement_filter_on_the_outbox_page_is_harmless(admin):
    assert admin.get(f"/outbox?announcement={HUGE}").status_code == 200


@pytest.mark.parametrize("name, headline", INVISIBLE_HEADLINES.items())
def test_the_compose_form_refuses_invisible_headlines(admin, name, headline):
    response = admin.post("/announcements/new", data=compose_form(admin, headline=headline))
    console_refused(response, 400 if "\x00" in headline else 422)  # a NUL in a form: 400


def test_the_compose_form_refuses_a_huge_reference(admin):
    response = admin.post("/announcements/new", data=compose_form(admin, msg_type="update",
                                                                   references=HUGE))
    console_refused(response, 422, message="不对应任何已知通知")


@pytest.mark.parametrize("expires", ["9999-12-31T23:59", "0001-01-01T00:00"])
def test_the_compose_form_refuses_an_expiry_out_of_range(admin, expires):
    response = admin.post("/announcements/new", data=compose_form(admin, expires=expires))
    console_refused(response, 422)


def test_a_huge_console_form_is_refused_with_the_console_page(admin):
    response = admin.post("/announcements/new", data=compose_form(admin, body="雨" * 300_000))
    console_refused(response, 413)


def test_the_console_says_there_is_no_such_page_in_the_users_language(admin):
    console_refused(admin.get(f"/announcements/{HUGE}"), 404, message="没有这个页面")
    console_refused(admin.get("/no-such-page"), 404, message="没有这个页面")


# --- NUL in a URL or a form (PostgreSQL cannot store or compare a text holding one) -----

@pytest.mark.parametrize("path", [
    "/residents?q=a%00b", "/audit?actor=a%00b", "/audit?action=%00", "/outbox?channel=%00",
    "/announcements/{id}/unreached?area=450702%00", "/announcements/{id}/unreached.csv?area=%00",
    "/?x%00=1",
])
def test_a_nul_in_a_console_query_is_refused(admin, api, path):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    console_refused(admin.get(path.format(id=created["id"])), 400)


def test_a_nul_in_a_console_form_is_refused(app, county):
    client = app.test_client()
    response = client.post("/login", data={"name": "admin\x00", "password": "admin-password",
                                           "csrf_token": csrf_token(client)})
    console_refused(response, 400)


@pytest.mark.parametrize("path", ["/api/v1/outbox?channel=%00", "/api/v1/residents?area=%00"])
def test_a_nul_in_an_api_query_is_refused(api, path):
    api_refused(api("admin").get(path), 400, message="NUL")


def test_a_nul_in_a_webhook_form_is_refused(app, county):
    response = signed_post(app, "/webhooks/twilio/inbound", {"From": "+8613800000011",
                                                              "Body": "1\x00"})
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/announcements/{id}/unreached?area=abc",
                                  "/announcements/{id}/unreached.csv?area=4507021",
                                  f"/announcements/{{id}}/unreached?area={HUGE}"])
def test_a_bad_area_on_the_unreached_pages_is_refused(admin, api, path):
    created = api("author").post("/api/v1/announcements", json=announcement()).json
    console_refused(admin.get(path.format(id=created["id"])), 400, message="4507021" if "4507021" in path else "")


# --- a roster may be larger than any other body ----------------------------------------

def roster_of(size: int) -> bytes:
    lines = ["name,phone,area_code"]
    number = 0
    while sum(len(line) + 1 for line in lines) < size:
        number += 1
        lines.append(f"居民{number},+86139{number:08d},450702100201")
    return "\n".join(lines).encode()


@pytest.fixture
def small_limits(app):
    app.config.update(MAX_REQUEST_BYTES=1024, MAX_ROSTER_BYTES=8192)


def test_a_roster_takes_its_own_limit_in_the_api(api, small_limits):
    assert api("admin").post("/api/v1/announcements",
                             json=announcement(body="雨" * 400)).status_code == 413
    accepted = api("admin").post("/api/v1/residents/import", data=roster_of(4096),
                                 headers={"Content-Type": "text/csv"})
    assert accepted.status_code != 413 and accepted.status_code < 500, accepted.json
    refused = api("admin").post("/api/v1/residents/import", data=roster_of(9000),
                                headers={"Content-Type": "text/csv"})
    api_refused(refused, 413, message="8192 bytes")


def test_a_roster_takes_its_own_limit_in_the_console(admin, small_limits):
    def upload(size):
        return admin.post("/residents/import", content_type="multipart/form-data", data={
            "csrf_token": csrf_token(admin, "/residents/import"),
            "roster": (io.BytesIO(roster_of(size)), "roster.csv")})

    accepted = upload(4096)
    assert accepted.status_code != 413 and accepted.status_code < 500
    console_refused(upload(9000), 413)
