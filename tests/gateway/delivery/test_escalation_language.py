"""An escalated delivery is in the resident's language, as their first one was."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import insert, select

from gateway.store import accounts, roster
from gateway.store.schema import areas, deliveries
from tests.conftest import run_jobs
from tests.gateway.conftest import AREAS, VILLAGE_A, announcement, person

pytestmark = pytest.mark.integration
ENGLISH = {"language": "en", "headline": "Red rainstorm warning",
           "body": "Torrential rain is expected within 3 hours.",
           "instruction": "Move to a safe place."}
ENGLISH_PHONE = "+8613800000031"


@pytest.fixture
def twilio_app(make_app, database_url, twilio):
    def build(**config):
        return make_app(database_url, TWILIO_ACCOUNT_SID=twilio.account_sid,
                        TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_FROM_NUMBER="+15005550006",
                        TWILIO_API_BASE=twilio.url, VOICE_RETRY_DELAY_SECONDS=0, **config)
    return build


def publish(app, english_speaker):
    """An announcement with an English text, over SMS and calls, to one resident."""
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": c, "name": n} for c, n in AREAS])
        roster.insert_residents(conn, [english_speaker])
        for name in ("author", "approver"):
            accounts.create_user(conn, name, name, f"{name}-password")
        tokens = {name: accounts.create_token(conn, name) for name in ("author", "approver")}
    client = app.test_client()
    created = client.post("/api/v1/announcements", headers=_bearer(tokens["author"]),
                          json=announcement(channels=["sms", "voice"], areas=[VILLAGE_A],
                                            translations=[ENGLISH]))
    assert created.status_code == 201, created.json
    approved = client.post(f"/api/v1/announcements/{created.json['id']}/approve",
                           headers=_bearer(tokens["approver"]))
    assert approved.status_code == 200, approved.json
    return created.json["id"]


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def languages(app, announcement_id):
    with app.extensions["engine"].connect() as conn:
        return {row.channel: (row.language, row.status) for row in conn.execute(
            select(deliveries).where(deliveries.c.announcement_id == announcement_id))}


def fail_by_callback(app, twilio, sid, code):
    """Twilio reports the message or call failed for good (a signed status callback)."""
    callback = twilio.status_callback(sid, "failed", error_code=code)
    answer = app.test_client().post(urlsplit(callback.url).path, data=callback.params,
                                    headers=callback.headers)
    assert answer.status_code == 200


def first_by(channel, tmp_path):
    """A channel policy that plans ``channel`` for everyone, with the default fallback order."""
    path = tmp_path / f"{channel}-first.toml"
    path.write_text(f'[[rule]]\nname = "everyone by {channel}"\nchannels = ["{channel}"]\n')
    return str(path)


def test_a_failed_sms_escalates_to_a_call_in_the_residents_language(twilio_app, twilio,
                                                                    tmp_path):
    app = twilio_app(POLICY_FILE=first_by("sms", tmp_path))
    announcement_id = publish(app, person("Tom Lee", phone=ENGLISH_PHONE, language="en"))
    run_jobs(app)
    (message,) = twilio.messages
    fail_by_callback(app, twilio, message, 30006)  # landline or unreachable carrier
    run_jobs(app)
    assert languages(app, announcement_id) == {"sms": ("en", "failed"), "voice": ("en", "sent")}
    (call,) = twilio.calls
    assert f"/media/a{announcement_id}-en-" in twilio.twiml[call]


def test_a_failed_call_escalates_to_an_sms_in_the_residents_language(twilio_app, twilio,
                                                                     tmp_path):
    app = twilio_app(POLICY_FILE=first_by("voice", tmp_path))
    announcement_id = publish(app, person("Ann Wu", phone=ENGLISH_PHONE, language="en"))
    run_jobs(app)
    (call,) = twilio.calls
    fail_by_callback(app, twilio, call, 21215)  # no permission to call this country
    run_jobs(app)
    assert languages(app, announcement_id) == {"voice": ("en", "failed"), "sms": ("en", "sent")}
    (message,) = twilio.messages.values()
    assert "Red rainstorm warning" in message["form"]["Body"]
    assert "暴雨" not in message["form"]["Body"]
