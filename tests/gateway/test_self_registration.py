"""Self-registration by QR code (#21): register with consent, prove the phone with a code read
from the outbox (the SMS channel with no provider), review and merge, change, delete, and the
limits that refuse bulk attempts. Real database (SQLite and PostgreSQL) and real Redis."""
from __future__ import annotations

import json
import re
import time

import pytest
from sqlalchemy import insert, select, update

from channels import outbox
from gateway.delivery import phone_codes, providers, queues
from gateway.store import ledger, registrations
from gateway.store.db import utcnow
from gateway.store.schema import (areas, audit_log, deliveries, inbound_messages, residents,
                                  self_registrations)
from tests.gateway.conftest import AREAS, VILLAGE_A, VILLAGE_B
from tests.gateway.console.conftest import csrf_token, login

NEW_PHONE = "13900000021"
NEW_E164 = "+8613900000021"
ON_ROSTER_E164 = "+8613800000012"  # 李娜 in VILLAGE_A (tests/gateway/conftest.py)


@pytest.fixture
def resident_client(app, county):
    return app.test_client()


def form(client, **overrides) -> dict:
    data = {"csrf_token": csrf_token(client, f"/join/{VILLAGE_A}"), "name": "周新来",
            "phone": NEW_PHONE, "language": "zh", "uses_wechat": "yes", "consent_contact": "1"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def last_code(app, phone: str) -> str:
    records, _total = outbox.read(providers.outbox_path(app), channel="sms", limit=10_000)
    texts = [record["text"] for record in records if record["address"] == phone]
    return re.search(r"\d{6}", texts[-1]).group(0)


def sent_codes(app, phone: str) -> int:
    records, _total = outbox.read(providers.outbox_path(app), channel="sms", limit=10_000)
    return sum(1 for record in records if record["address"] == phone)


def register(app, client, **overrides):
    response = client.post(f"/join/{VILLAGE_A}", data=form(client, **overrides))
    assert response.status_code == 302, response.get_data(as_text=True)
    phone = overrides.get("phone", NEW_PHONE)
    phone = "+86" + phone if not phone.startswith("+") else phone
    return client.post(f"/join/{VILLAGE_A}/verify",
                       data={"csrf_token": csrf_token(client, f"/join/{VILLAGE_A}/verify"),
                             "code": last_code(app, phone)})


def rows(app, table, *conditions):
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(table).where(*conditions)).all()


def test_register_verify_and_wait_for_review(app, resident_client):
    response = register(app, resident_client, need_visually_impaired="1",
                        consent_visually_impaired="1")
    assert response.status_code == 200
    assert "谢谢，您已登记" in response.get_data(as_text=True)
    [registration] = rows(app, self_registrations)
    assert registration.status == "pending" and registration.phone == NEW_E164
    assert json.loads(registration.needs) == ["visually_impaired"]
    assert set(json.loads(registration.consents)) == {"contact", "visually_impaired"}
    [pending] = rows(app, residents, residents.c.phone == NEW_E164)
    # Pending review: on the roster for extreme SMS, the need not written until approval.
    assert pending.pending_review is True and pending.visually_impaired is False
    assert pending.area_code == VILLAGE_A
    [entry] = [e for e in rows(app, audit_log) if e.action == "register"]
    assert NEW_E164 not in entry.detail and "周新来" not in entry.detail


def test_a_need_without_its_consent_is_refused_and_nothing_sent(app, resident_client):
    response = resident_client.post(f"/join/{VILLAGE_A}", data=form(
        resident_client, need_hearing_impaired="1"))
    assert response.status_code == 422
    assert 'id="error-need_hearing_impaired"' in response.get_data(as_text=True)
    assert sent_codes(app, NEW_E164) == 0
    response = resident_client.post(f"/join/{VILLAGE_A}", data=form(resident_client,
                                                                     consent_contact=None))
    assert response.status_code == 422 and sent_codes(app, NEW_E164) == 0


def test_bad_input_is_a_clear_error_not_a_500(app, resident_client):
    response = resident_client.post(f"/join/{VILLAGE_A}", data=form(resident_client, phone="12",
                                                                     name=""))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="error-phone"' in page and 'id="error-name"' in page
    assert resident_client.get("/join/450702100").status_code == 404  # a town, not a village
    assert resident_client.get("/join/999999999999").status_code == 404
    assert resident_client.get("/join/abc").status_code == 404


def test_wrong_codes_until_refused(app, resident_client):
    client = resident_client
    client.post(f"/join/{VILLAGE_A}", data=form(client))
    right = last_code(app, NEW_E164)
    with client.session_transaction() as cookie:  # only the ticket: what was typed is in Redis
        assert set(cookie["join"]) == {"ticket", "village"}
        ticket = cookie["join"]["ticket"]
    wrong = f"{(int(right) + 1) % 10 ** 6:06d}"
    verify = {"csrf_token": csrf_token(client, f"/join/{VILLAGE_A}/verify"), "code": wrong}
    for _ in range(phone_codes.MAX_TRIES - 1):
        response = client.post(f"/join/{VILLAGE_A}/verify", data=verify)
        assert response.status_code == 422
    response = client.post(f"/join/{VILLAGE_A}/verify", data=verify)
    assert response.status_code == 302  # the code is void: back to the form, told why
    assert "验证码错误次数过多" in client.get(response.location).get_data(as_text=True)
    # The right code no longer works either: the tries are used up.
    client.post(f"/join/{VILLAGE_A}", data=form(client))  # within the minute: refused
    assert sent_codes(app, NEW_E164) == 1
    with app.test_request_context():
        with pytest.raises(phone_codes.CodeRefused) as refused:
            phone_codes.check_code(ticket, right, "127.0.0.1")
    assert refused.value.reason in ("tries", "expired")
    assert rows(app, self_registrations) == []


def test_the_same_number_from_a_second_session(app, county):
    first, second = app.test_client(), app.test_client()
    first.post(f"/join/{VILLAGE_A}", data=form(first))
    code = last_code(app, NEW_E164)
    # The second session is refused a new code within the minute …
    response = second.post(f"/join/{VILLAGE_A}", data=form(second))
    assert response.status_code == 422 and sent_codes(app, NEW_E164) == 1
    # … and cannot use the first session's code: it has no ticket for it.
    response = second.post(f"/join/{VILLAGE_A}/verify",
                           data={"csrf_token": csrf_token(second, f"/join/{VILLAGE_A}"),
                                 "code": code})
    assert response.status_code == 302 and response.location.endswith(f"/join/{VILLAGE_A}")
    assert rows(app, self_registrations) == []
    # The first session still can.
    response = first.post(f"/join/{VILLAGE_A}/verify",
                          data={"csrf_token": csrf_token(first, f"/join/{VILLAGE_A}/verify"),
                                "code": code})
    assert response.status_code == 200 and len(rows(app, self_registrations)) == 1


def test_bulk_attempts_are_refused_per_number_and_per_address(app, county):
    redis = queues.connection(app)
    client = app.test_client()
    for attempt in range(app.config["JOIN_CODES_PER_NUMBER"]):
        redis.delete(f"tongbao:join:gap:{NEW_E164}")  # as if a minute had passed
        assert client.post(f"/join/{VILLAGE_A}", data=form(client)).status_code == 302
    redis.delete(f"tongbao:join:gap:{NEW_E164}")
    response = client.post(f"/join/{VILLAGE_A}", data=form(client))
    assert response.status_code == 422 and "分钟后再试" in response.get_data(as_text=True)
    assert sent_codes(app, NEW_E164) == app.config["JOIN_CODES_PER_NUMBER"]
    # One address asking for codes to many numbers is stopped too.
    allowed = app.config["JOIN_CODES_PER_ADDRESS"] - app.config["JOIN_CODES_PER_NUMBER"] - 1
    statuses = [client.post(f"/join/{VILLAGE_A}",
                            data=form(client, phone=f"1390000{n:04d}")).status_code
                for n in range(100, 100 + allowed + 2)]
    assert statuses[:allowed] == [302] * allowed and statuses[-1] == 422


def test_behind_a_trusted_proxy_each_client_address_counts_apart(make_app, database_url):
    """As for logins: the address the proxy saw (X-Forwarded-For), not the proxy's own."""
    app = make_app(database_url, TRUSTED_PROXIES=1, JOIN_CODES_PER_ADDRESS=2)
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": code, "name": name} for code, name in AREAS])

    def ask(client, phone: str, address: str) -> int:
        return client.post(f"/join/{VILLAGE_A}", data=form(client, phone=phone),
                           headers={"X-Forwarded-For": address},
                           environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code

    first, second = app.test_client(), app.test_client()
    assert [ask(first, f"139000001{n:02d}", "203.0.113.5") for n in range(3)] == [302, 302, 422]
    assert ask(second, "13900000199", "203.0.113.6") == 302


def test_a_code_expires(app, county):
    client = app.test_client()
    client.post(f"/join/{VILLAGE_A}", data=form(client))
    redis = queues.connection(app)
    key = f"tongbao:join:code:{NEW_E164}"
    assert 0 < redis.ttl(key) <= app.config["JOIN_CODE_MINUTES"] * 60
    redis.pexpire(key, 1)
    time.sleep(0.05)
    response = client.post(f"/join/{VILLAGE_A}/verify",
                           data={"csrf_token": csrf_token(client, f"/join/{VILLAGE_A}"),
                                 "code": last_code(app, NEW_E164)})
    assert response.status_code == 302
    assert "验证码已过期" in client.get(response.location).get_data(as_text=True)
    assert rows(app, self_registrations) == []


def test_admin_approval_merges_by_phone_instead_of_duplicating(app, county):
    client = app.test_client()
    register(app, client, phone=ON_ROSTER_E164, name="李娜（新）", language="en",
             need_no_smartphone="1", consent_no_smartphone="1")
    # Already on the roster: no pending twin is added.
    assert len(rows(app, residents, residents.c.phone == ON_ROSTER_E164)) == 1
    admin = app.test_client()
    login(admin, "admin")
    page = admin.get("/registrations").get_data(as_text=True)
    assert "李娜（新）" in page and "李娜" in page
    [registration] = rows(app, self_registrations)
    response = admin.post(f"/registrations/{registration.id}/approve",
                          data={"csrf_token": csrf_token(admin, "/registrations")})
    assert response.status_code == 302
    [resident] = rows(app, residents, residents.c.phone == ON_ROSTER_E164)
    assert resident.name == "李娜（新）" and resident.language == "en"
    assert resident.has_smartphone is False and resident.pending_review is False
    assert rows(app, self_registrations)[0].status == "approved"
    again = admin.post(f"/registrations/{registration.id}/approve",
                       data={"csrf_token": csrf_token(admin, "/registrations")})
    assert again.status_code == 404


def test_approval_of_a_new_resident_and_rejection(app, county):
    register(app, app.test_client())
    register(app, app.test_client(), phone="13900000022", name="不是本村")
    admin = app.test_client()
    login(admin, "admin")
    first, second = rows(app, self_registrations)
    admin.post(f"/registrations/{first.id}/approve",
               data={"csrf_token": csrf_token(admin, "/registrations")})
    admin.post(f"/registrations/{second.id}/reject",
               data={"csrf_token": csrf_token(admin, "/registrations")})
    [approved] = rows(app, residents, residents.c.phone == NEW_E164)
    assert approved.pending_review is False and approved.id == first.resident_id
    assert rows(app, residents, residents.c.phone == "+8613900000022") == []
    [erased] = rows(app, residents, residents.c.id == second.resident_id)
    assert erased.name == "" and erased.retired_at is not None
    author = app.test_client()
    login(author, "author")
    assert author.get("/registrations").status_code == 403
    assert author.get(f"/registrations/poster/{VILLAGE_B}").status_code == 403


def test_the_poster_carries_the_village_qr_code(app, county):
    admin = app.test_client()
    login(admin, "admin")
    page = admin.get(f"/registrations/poster/{VILLAGE_B}").get_data(as_text=True)
    assert "新屋村" in page and f"/join/{VILLAGE_B}" in page
    # Chinese first and English beside it, whatever the console's language.
    assert "扫码登记，接收政府官方通知" in page
    assert "Scan to register for official government notices" in page
    assert 'src="data:image/svg+xml' in page
    assert admin.get("/registrations/poster/450702100").status_code == 404


def change_and_delete_client(app, phone: str):
    client = app.test_client()
    client.post(f"/join/{VILLAGE_A}/manage",
                data={"csrf_token": csrf_token(client, f"/join/{VILLAGE_A}/manage"),
                      "phone": phone})
    response = client.post(f"/join/{VILLAGE_A}/verify",
                           data={"csrf_token": csrf_token(client, f"/join/{VILLAGE_A}/verify"),
                                 "code": last_code(app, phone)})
    assert response.status_code == 302 and response.location.endswith("/mine")
    return client


def test_a_resident_sees_changes_and_deletes_what_is_held(app, county):
    [resident] = rows(app, residents, residents.c.phone == ON_ROSTER_E164)
    with app.extensions["engine"].begin() as conn:  # a notice that went to them before
        conn.execute(update(residents).where(residents.c.id == resident.id)
                     .values(review_note="a grid worker's note about them"))
        conn.execute(insert(inbound_messages).values(
            at=utcnow(), channel="sms", address=ON_ROSTER_E164, resident_id=resident.id,
            intent="other", body="我家在村口"))
        conn.execute(insert(deliveries).values(
            announcement_id=1, channel="sms", recipient_id=resident.id, address=ON_ROSTER_E164,
            language="zh", batch=0, status="failed", attempts=1,
            last_error=f"'To' number {ON_ROSTER_E164} is not a valid mobile number"))
        conn.execute(insert(deliveries).values(
            announcement_id=1, channel="voice", recipient_id=resident.id, address=ON_ROSTER_E164,
            language="zh", batch=0, status="queued", attempts=0))
        ledger.ensure_counts(conn, 1, ["sms", "voice"])
        ledger.bump(conn, 1, "voice", {"queued": 1})
    client = change_and_delete_client(app, ON_ROSTER_E164)
    page = client.get(f"/join/{VILLAGE_A}/mine").get_data(as_text=True)
    assert "李娜" in page and ON_ROSTER_E164 in page
    token = csrf_token(client, f"/join/{VILLAGE_A}/mine")
    response = client.post(f"/join/{VILLAGE_A}/mine", data={
        "csrf_token": token, "action": "change", "resident": resident.id, "language": "en",
        "channel_sms": "1", "need_hearing_impaired": "1", "consent_hearing_impaired": "1"})
    assert response.status_code == 302
    [changed] = rows(app, residents, residents.c.id == resident.id)
    assert changed.language == "en" and changed.hearing_impaired is True
    assert set(changed.opt_out.split(";")) == {"voice", "wechat"}
    client.post(f"/join/{VILLAGE_A}/mine", data={"csrf_token": token, "action": "change",
                                                 "resident": resident.id, "language": "en",
                                                 "extreme_only": "1"})
    assert set(rows(app, residents, residents.c.id == resident.id)[0].opt_out.split(";")) == \
        {"sms", "voice", "wechat"}
    # Someone else's resident id is refused.
    other = rows(app, residents, residents.c.phone == "+8613800000011")[0]
    assert client.post(f"/join/{VILLAGE_A}/mine", data={
        "csrf_token": token, "action": "change", "resident": other.id,
        "language": "zh"}).status_code == 404
    unconfirmed = client.post(f"/join/{VILLAGE_A}/mine", data={"csrf_token": token,
                                                               "action": "delete"})
    assert unconfirmed.status_code == 302
    assert rows(app, residents, residents.c.id == resident.id)[0].name == "李娜"
    response = client.post(f"/join/{VILLAGE_A}/mine", data={"csrf_token": token,
                                                            "action": "delete",
                                                            "confirm_delete": "1"})
    assert response.status_code == 200
    [erased] = rows(app, residents, residents.c.id == resident.id)
    assert erased.name == "" and erased.phone is None and erased.retired_at is not None
    assert erased.grid is None and erased.review_note is None
    assert rows(app, inbound_messages) == []  # their SMS replies too
    history = rows(app, deliveries, deliveries.c.recipient_id == resident.id)
    assert {(row.address, row.provider_id, row.last_error) for row in history} == {("", None, None)}
    assert {row.channel: row.status for row in history} == {"sms": "failed", "voice": "cancelled"}
    with app.extensions["engine"].connect() as conn:
        voice = ledger.counts(conn, 1)["voice"]
    assert (voice["queued"], voice["cancelled"]) == (0, 1)
    actions = [entry.action for entry in rows(app, audit_log) if entry.actor == "self-service"]
    assert actions.count("self_change") == 2 and "erase" in actions and "self_view" in actions
    # The proof is spent with the record: the page asks for a new code.
    assert client.get(f"/join/{VILLAGE_A}/mine").status_code == 302


def test_pending_review_is_reached_by_sms_for_extreme_notices_only(app, county):
    """The planner and the preview apply the one rule (audiences.policy.channels_for)."""
    from gateway.delivery import preview
    from tests.gateway.delivery.conftest import planned, row_of
    with app.extensions["engine"].begin() as conn:
        registration_id = registrations.submit(conn, registrations.Registration(
            area_code=VILLAGE_A, name="周新来", phone=NEW_E164, language="zh", uses_wechat=False,
            needs=("visually_impaired",), consents=("contact", "visually_impaired")))
        pending_id = conn.execute(select(self_registrations.c.resident_id).where(
            self_registrations.c.id == registration_id)).scalar_one()
    extreme = planned(app, severity="extreme", areas=[VILLAGE_A])
    moderate = planned(app, severity="moderate", areas=[VILLAGE_A])
    with app.extensions["engine"].connect() as conn, app.app_context():
        mine = {(row.announcement_id, row.channel) for row in conn.execute(
            select(deliveries).where(deliveries.c.recipient_id == pending_id,
                                     deliveries.c.channel.in_(("sms", "voice", "wechat"))))}
        shown = preview.preview(conn, row_of(conn, extreme))["deliveries"]
        planned_sms = ledger.counts(conn, extreme)["sms"]["queued"]
    assert mine == {(extreme, "sms")}
    assert moderate not in {announcement for announcement, _channel in mine}
    assert shown["sms"] == planned_sms


def test_the_code_goes_through_twilio_when_it_is_configured(make_app, database_url, twilio):
    """With a provider configured, the code is an SMS over Twilio (here its local stand-in)."""
    app = make_app(database_url, TWILIO_ACCOUNT_SID=twilio.account_sid,
                   TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_FROM_NUMBER="+15005550006",
                   TWILIO_API_BASE=twilio.url)
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": code, "name": name} for code, name in AREAS])
    client = app.test_client()
    client.post(f"/join/{VILLAGE_A}", data=form(client, language="en"))
    [message] = [r.form for r in twilio.requests if r.path.endswith("/Messages.json")]
    assert message["To"] == NEW_E164 and message["From"] == "+15005550006"
    assert message["Body"].startswith("【钦州发布】Your Tongbao registration code is ")
    code = re.search(r"\d{6}", message["Body"]).group(0)
    assert sent_codes(app, NEW_E164) == 0  # nothing in the outbox: Twilio carried it
    response = client.post(f"/join/{VILLAGE_A}/verify",
                           data={"csrf_token": csrf_token(client, f"/join/{VILLAGE_A}/verify"),
                                 "code": code})
    assert response.status_code == 200 and len(rows(app, self_registrations)) == 1
    # A number Twilio refuses: a clear error on the form, no 500.
    assert "验证码无法发送到此号码" in client.post(
        f"/join/{VILLAGE_A}", data=form(client, phone="+8613800000001")).get_data(as_text=True)


def test_a_roster_import_that_lists_a_pending_resident_puts_them_on_the_roster(app, county):
    from gateway.store import roster
    with app.extensions["engine"].begin() as conn:
        registrations.submit(conn, registrations.Registration(
            area_code=VILLAGE_A, name="周新来", phone=NEW_E164, language="zh", uses_wechat=False))
        roster.import_residents(conn, f"name,phone,area_code\n周新来,{NEW_PHONE},{VILLAGE_A}\n"
                                .encode(), "admin")
    [resident] = rows(app, residents, residents.c.phone == NEW_E164)
    assert resident.pending_review is False
