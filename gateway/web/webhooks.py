"""Provider webhooks (Twilio status, keypress and replies; WeChat delivery reports), and the
public files that calls and loudspeakers fetch: synthesized speech and the loudspeaker
signing key.

Every Twilio request is checked against ``X-Twilio-Signature`` computed over the
public URL (``PUBLIC_BASE_URL``, so it holds behind a proxy); an unsigned or
tampered request gets 403 and changes nothing. Duplicates and unknown ids are
acknowledged with 200 and change nothing, so Twilio stops retrying them; so is
a signed status or keypress callback whose ``MessageSid``/``CallSid`` is not the
provider id recorded for the delivery in its URL (it is logged as a warning).

The office number's voice webhook, ``/webhooks/twilio/hotline``, is the notice hotline
(``gateway.delivery.hotline``): its state travels in the signed URL of each step.

WeChat pushes every message and event of the Official Account to one callback URL,
``/webhooks/wechat``, signed with ``WECHAT_CALLBACK_TOKEN`` (a request not signed with it
gets 403). The ``TEMPLATESENDJOBFINISH`` event moves the WeChat delivery whose provider id is
its ``MsgID`` to delivered or failed; one naming no delivery here is answered 200 and
logged (WeChat would otherwise push it again), any other message or event is answered 200
and ignored, and a body that is not XML gets 400. A report can overtake the delivery job
that records the MsgID (the job writes its results every few dozen sends): while a WeChat
delivery to the report's openid is still being sent, the webhook waits for the MsgID up to
``WECHAT_REPORT_WAIT_SECONDS`` (WeChat waits five seconds for the answer).
"""
from __future__ import annotations

import logging
import os
import time

from flask import Blueprint, Response, abort, current_app, request, send_from_directory
from sqlalchemy import insert, select, update

from channels import twilio_sms, twilio_voice, wechat
from channels.loudspeaker.protocol import SigningKey
from channels.base import StatusUpdate
from channels.twilio_common import valid_signature
from gateway.delivery import call_lines, hotline, lifecycle, media, outcomes
from gateway.store import audit, ledger, roster
from gateway.store.db import engine, utcnow
from gateway.store.schema import announcements, deliveries, inbound_messages, residents
from messages.audio import AUDIO_FILE_NAME

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)
WECHAT_REPORT_WAIT_SECONDS = 3.0
WECHAT_REPORT_POLL_SECONDS = 0.1
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def public_url() -> str:
    """The URL Twilio called, as the public sees it (the signature covers it)."""
    url = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + request.path
    query = request.query_string.decode()
    return f"{url}?{query}" if query else url


def require_twilio_signature() -> None:
    token = current_app.config["TWILIO_AUTH_TOKEN"]
    if not token or not valid_signature(token, public_url(), request.form.to_dict(),
                                        request.headers.get("X-Twilio-Signature")):
        abort(403, "the request is not signed by the configured Twilio account")


def twiml(body: str) -> Response:
    return Response(body, mimetype="text/xml")


@bp.post("/webhooks/twilio/sms/<int:delivery_id>")
def sms_status(delivery_id: int):
    require_twilio_signature()
    update = twilio_sms.parse_callback(request.form)
    if update is not None:
        outcomes.apply(delivery_id, update, from_provider=True)
    return "", 200


@bp.post("/webhooks/twilio/voice/<int:delivery_id>")
def voice_status(delivery_id: int):
    require_twilio_signature()
    if request.args.get("event") == "gather":
        return _gather(delivery_id)
    update = twilio_voice.parse_callback(request.form)
    if update is not None:
        outcomes.apply(delivery_id, update, from_provider=True)
        if request.form.get("CallStatus") in twilio_voice.FINAL_STATUSES:
            call_lines.release(delivery_id)
    return "", 200


def _gather(delivery_id: int) -> Response:
    """The resident pressed a key (or none): confirm on 1, replay on 2 or silence, then hang up."""
    confirmation = twilio_voice.parse_gather(request.form)
    if confirmation is not None:
        outcomes.apply(delivery_id, confirmation, from_provider=True)
    with engine().connect() as conn:
        row = conn.execute(select(deliveries.c.language.label("text_language"),
                                  deliveries.c.recipient_id.label("listener_id"), announcements)
                           .join(announcements, announcements.c.id == deliveries.c.announcement_id)
                           .where(deliveries.c.id == delivery_id)).first()
        if row is None:
            return twiml(EMPTY_TWIML)
        spoken = lifecycle.in_language(conn, row, row.text_language)
        listener = roster.spoken_languages(conn, [row.listener_id]).get(row.listener_id)
    rendered = media.rendered_for(spoken, "voice", spoken.language, listener)
    try:
        attempt = int(request.args.get("attempt", "1"))
    except ValueError:
        attempt = 1
    return twiml(twilio_voice.gather_twiml(request.form.get("Digits"),
                                           rendered.data.get("audio_url"),
                                           twilio_voice.say_text(rendered), spoken.language,
                                           public_url(), attempt,
                                           current_app.config["VOICE_GATHER_SECONDS"]))


@bp.post(hotline.PATH)
def hotline_call():
    """The office number's voice webhook: the notice hotline (``gateway.delivery.hotline``)."""
    require_twilio_signature()
    return twiml(hotline.answer(request.form, request.args))


@bp.post("/webhooks/twilio/inbound")
def sms_inbound():
    """A reply: 1 confirms the latest announcement; TD/STOP/退订 opts out of SMS; the rest is kept."""
    require_twilio_signature()
    number, intent = twilio_sms.parse_inbound(request.form)
    with engine().begin() as conn:
        resident = conn.execute(select(residents.c.id, residents.c.opt_out)
                                .where(residents.c.phone == number)).first()
        latest = _latest_sms(conn, resident.id) if resident else None
        conn.execute(insert(inbound_messages).values(
            at=utcnow(), channel="sms", address=number, intent=intent,
            resident_id=resident.id if resident else None,
            announcement_id=latest.announcement_id if latest else None,
            body=(request.form.get("Body") or "")[:1600]))
        if resident and intent == "opt_out":
            _opt_out_of_sms(conn, resident)
    if latest is not None and intent == "confirm":
        outcomes.apply(latest.id, StatusUpdate("confirmed", extra={"outcome": "replied 1"}))
    return twiml(EMPTY_TWIML)


def _latest_sms(conn, resident_id: int):
    return conn.execute(select(deliveries.c.id, deliveries.c.announcement_id)
                        .where(deliveries.c.recipient_id == resident_id,
                               deliveries.c.channel == "sms",
                               deliveries.c.status.in_(ledger.HANDED_OVER))
                        .order_by(deliveries.c.id.desc()).limit(1)).first()


def _opt_out_of_sms(conn, resident) -> None:
    """Honoured for every later announcement, except ``extreme`` ones (the policy overrides)."""
    channels = {c for c in resident.opt_out.split(";") if c} | {"sms"}
    conn.execute(update(residents).where(residents.c.id == resident.id)
                 .values(opt_out=";".join(sorted(channels))))
    audit.record(conn, "resident", "opt_out", f"resident:{resident.id}", "sms (by SMS reply)")


def require_wechat_signature() -> None:
    if not wechat.valid_signature(current_app.config["WECHAT_CALLBACK_TOKEN"],
                                  request.args.get("signature"), request.args.get("timestamp"),
                                  request.args.get("nonce")):
        abort(403, "the request is not signed with the configured WECHAT_CALLBACK_TOKEN")


@bp.get("/webhooks/wechat")
def wechat_verify():
    """WeChat checks the callback URL once, when it is configured: echo ``echostr`` back."""
    require_wechat_signature()
    return Response(request.args.get("echostr", ""), mimetype="text/plain")


@bp.post("/webhooks/wechat")
def wechat_event():
    """A message or event pushed by WeChat; only template delivery reports are read."""
    require_wechat_signature()
    try:
        report = wechat.parse_event(request.get_data())
    except wechat.MalformedEvent as error:
        abort(400, str(error))
    if report is not None:
        delivery_id = _wechat_delivery(report.provider_id, report.extra["openid"])
        if delivery_id is None:
            log.warning("ignored a WeChat delivery report for MsgID %r: no delivery has it",
                        report.provider_id)
        else:
            outcomes.apply(delivery_id, report, from_provider=True)
    # WeChat wants "success" (or nothing), else it pushes again and warns the account.
    return Response("success", mimetype="text/plain")


def _wechat_delivery(msgid: str, openid: str) -> int | None:
    """The WeChat delivery whose provider id is ``msgid``, waiting a little for it while a
    delivery to ``openid`` is being sent (its job has not recorded the MsgID yet)."""
    deadline = time.monotonic() + WECHAT_REPORT_WAIT_SECONDS
    while True:
        with engine().connect() as conn:
            found = conn.execute(select(deliveries.c.id).where(
                deliveries.c.channel == "wechat", deliveries.c.provider_id == msgid)).scalar()
            if found is not None:
                return found
            in_flight = conn.execute(select(deliveries.c.id).where(
                deliveries.c.status == "sending", deliveries.c.channel == "wechat",
                deliveries.c.address == openid).limit(1)).first()
        if in_flight is None or time.monotonic() >= deadline:
            return None
        time.sleep(WECHAT_REPORT_POLL_SECONDS)


@bp.get("/media/<name>")
def media_file(name: str):
    """Synthesized speech; names are content-addressed, so the file never changes."""
    if not AUDIO_FILE_NAME.fullmatch(name):
        abort(404)
    response = send_from_directory(os.path.abspath(current_app.config["MEDIA_DIR"]), name,
                                   mimetype="audio/wav", max_age=31536000)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response



@bp.get("/loudspeaker/public-key.pem")
def loudspeaker_public_key():
    """The key controllers verify every command with (made on first use)."""
    key = SigningKey.load_or_create(current_app.config["SIGNING_KEY_PATH"])
    return Response(key.public_pem(), mimetype="application/x-pem-file")
