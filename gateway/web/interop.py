"""CAP 1.2 in and out, the Atom feed of alerts, and the OpenAPI description of the JSON API.

A CAP alert from another system goes through the same lifecycle functions as
the API and the console: it becomes one announcement awaiting approval, an
Update supersedes the alert it references once approved, and a Cancel withdraws
at once and tells everyone already reached, in the gateway's fixed wording. An
Update or Cancel must have the status of what it references (no drill touches a
real notice).

The first ``<info>`` block is the announcement's own language; each further
block is its text in another language (a translation). CAP output writes the
announcement and its translations again as one ``<info>`` per language.
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import Connection, Row, or_, select
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.delivery import lifecycle
from gateway.web import api
from gateway.web.api import ApiError, token_required
from gateway.store.db import as_utc, engine, utcnow
from gateway.store.schema import announcements, areas
from messages.announcement import AnnouncementInput, Translation
from messages.cap import CAP_MEDIA_TYPE, CapError
from messages.cap.read import CapAlert, parse_cap, referenced_identifiers
from messages.cap.write import CapExport, CapInfo, FeedEntry, atom_feed, to_cap

bp = Blueprint("interop", __name__)

MAX_CAP_BYTES = 1_000_000
# What the public may read, even once withdrawn.
PUBLIC_STATES = lifecycle.RELEASED_STATES
FEED_STATES = ("sending", "done")
FEED_SIZE = 100  # announcements without an expiry would otherwise stay in the feed forever
ATOM_MEDIA_TYPE = "application/atom+xml"
OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.json")


def _answer_errors_like_the_api(blueprint: Blueprint) -> None:
    """Errors here take the same JSON shape as everywhere else under /api/v1."""
    for handlers in api.bp.error_handler_spec[None].values():
        for exception, handler in handlers.items():
            blueprint.register_error_handler(exception, handler)


_answer_errors_like_the_api(bp)


# --- CAP in --------------------------------------------------------------------------

@bp.post("/api/v1/cap")
@token_required
def receive_cap():
    alert = _alert_from_request()
    _check_identifiers_fit(alert)
    if alert.msg_type == "cancel":
        return _cancel_over_cap(alert)
    return _announce_over_cap(alert)


def _alert_from_request() -> CapAlert:
    # Werkzeug refuses a longer body before reading it, so nothing big is ever held.
    request.max_content_length = MAX_CAP_BYTES
    try:
        return parse_cap(request.get_data(), max_bytes=MAX_CAP_BYTES)
    except RequestEntityTooLarge:
        raise ApiError(f"the CAP document is larger than the limit of {MAX_CAP_BYTES} bytes; "
                       "nothing was stored", 413) from None
    except CapError as error:
        where = {} if error.line is None else {"line": error.line}
        raise ApiError(error.message, 400, **where) from None


def _check_identifiers_fit(alert: CapAlert) -> None:
    """The columns' lengths, checked here: PostgreSQL would refuse a longer value with a 500."""
    for name, value in {"identifier": alert.identifier, "sender": alert.sender}.items():
        limit = announcements.c[name].type.length
        if len(value) > limit:
            raise ApiError(f"the CAP {name} is too long: at most {limit} characters can be stored",
                           400, name)


def _announce_over_cap(alert: CapAlert):
    data = _one_announcement(alert)
    with engine().begin() as conn:
        _refuse_second_delivery(conn, alert.identifier)
        originals = _referenced(conn, alert.references)
        if originals:  # CAP lists the whole chain; the newest is the one in force
            data = replace(data, references=originals[-1].identifier)
        row = lifecycle.get(conn, lifecycle.create(conn, data, g.user, sender=alert.sender,
                                                   identifier=alert.identifier))
        languages = lifecycle.languages(conn, row)
    lifecycle.queue_speech(row.id, data)
    return jsonify({"identifier": alert.identifier, "msg_type": alert.msg_type,
                    "announcement": {"id": row.id, "identifier": row.identifier,
                                     "languages": languages, "state": row.state}}), 201


def _one_announcement(alert: CapAlert) -> AnnouncementInput:
    """The first <info> block, with each further block as its text in another language.

    Everything but the texts (areas, severity, urgency, certainty, category,
    expires) is the first block's. Blocks naming other areas or another severity
    are refused: one announcement cannot tell residents different things by language.
    """
    first, *others = alert.infos
    for number, info in enumerate(others, start=2):
        for name, differs in (("areas", set(info.areas) != set(first.areas)),
                              ("severity", info.severity != first.severity)):
            if differs:
                raise ApiError(f"info[{number}] ({info.language}) differs from the first <info> "
                               f"in its {name}; every language of an alert must say the same "
                               f"{name}, so send one alert per {name}", 400, name)
    return replace(first, translations=[
        Translation(info.language, info.headline, info.body, info.instruction, info.event)
        for info in others])


def _cancel_over_cap(alert: CapAlert):
    """Withdraw what the Cancel references; the residents reached get the fixed withdrawal
    wording, never the Cancel's own text (it was approved by no one here)."""
    with engine().begin() as conn:
        targets = [row for row in _referenced(conn, alert.references)
                   if row.state in lifecycle.STILL_IN_FORCE]
        if not targets:
            raise ApiError("every announcement this Cancel references is already withdrawn", 409,
                           "references")
        for row in targets:
            mixed = lifecycle.drill_and_real_mixed(row, alert.status)
            if mixed:
                raise ApiError(mixed, 422, "status")
        outcomes = [lifecycle.cancel(conn, row.id, g.user,
                                     sender=current_app.config["CAP_SENDER"],
                                     time_zone=current_app.config["OFFICE_TIMEZONE"])
                    for row in targets]
        states = [lifecycle.get(conn, row.id).state for row in targets]
    queued = [lifecycle.follow_up(outcome) for outcome in outcomes]
    return jsonify({"identifier": alert.identifier, "msg_type": alert.msg_type,
                    "cancelled": [{"id": row.id, "identifier": row.identifier, "state": state,
                                   "correction_id": outcome.to_plan[0] if outcome.to_plan else None}
                                  for row, state, outcome in zip(targets, states, outcomes)],
                    "planning_queued": all(queued)}), 201


def _refuse_second_delivery(conn: Connection, identifier: str) -> None:
    if _by_identifier(conn, identifier):
        raise ApiError(f"alert {identifier} was already received; send an Update or a Cancel "
                       "that references it", 409, "identifier")


def _referenced(conn: Connection, references: str | None) -> list[Row]:
    """The referenced announcements, oldest reference first; all must be known."""
    identifiers = referenced_identifiers(references)
    rows = [_by_identifier(conn, identifier) for identifier in identifiers]
    unknown = [identifier for identifier, row in zip(identifiers, rows) if row is None]
    if unknown:
        raise ApiError(f"the alert references {', '.join(unknown)}, which this gateway has no "
                       "announcement for", 422, "references", unknown=unknown)
    return rows


def _by_identifier(conn: Connection, identifier: str) -> Row | None:
    return conn.execute(select(announcements)
                        .where(announcements.c.identifier == identifier)).first()


# --- CAP out -------------------------------------------------------------------------

@bp.get("/api/v1/announcements/<int:announcement_id>.cap")
@bp.get("/cap/<int:announcement_id>.xml")
def cap_document(announcement_id: int):
    """Public once approved; before that (or a draft) only for holders of an API token."""
    with engine().connect() as conn:
        row = lifecycle.get(conn, announcement_id)
        export = _cap_export(conn, row)
    serve = partial(_cap_response, export, announcement_id)
    return serve() if _is_public(row) else token_required(serve)()


def _cap_response(export: CapExport, announcement_id: int) -> Response:
    try:
        return Response(to_cap(export), mimetype=CAP_MEDIA_TYPE)
    except ValueError as error:  # text XML cannot carry, e.g. a control character
        raise ApiError(f"announcement {announcement_id} cannot be written as CAP 1.2: {error}",
                       409) from None


def _is_public(row) -> bool:
    return row.state in PUBLIC_STATES and row.status != "draft"


def _cap_export(conn: Connection, row) -> CapExport:
    """The announcement as one CAP alert: an <info> per language, its own language first."""
    names = _area_names(conn, json.loads(row.areas))
    return CapExport(
        identifier=row.identifier, sender=row.sender,
        sent=as_utc(row.sent or row.created_at), status=row.status, msg_type=row.msg_type,
        references=_references(conn, row.supersedes_id),
        infos=[_cap_info(row, text, names)
               for text in [row, *lifecycle.translations(conn, row.id)]])


def _cap_info(row, text, area_names: dict[str, str]) -> CapInfo:
    """One language's block: ``text``'s language and texts, everything else the announcement's."""
    return CapInfo(
        language=text.language, category=row.category, event=text.event, urgency=row.urgency,
        severity=row.severity, certainty=row.certainty, headline=text.headline,
        description=text.body, instruction=text.instruction, expires=as_utc(row.expires),
        web=_public_url(f"/a/{row.id}"),
        areas=[(code, area_names.get(code, code)) for code in json.loads(row.areas)])


def _references(conn: Connection, original_id: int | None) -> str | None:
    """CAP's ``sender,identifier,sent`` for the announcement this one replaces or cancels."""
    if original_id is None:
        return None
    original = lifecycle.get(conn, original_id)
    sent = as_utc(original.sent or original.created_at).replace(microsecond=0).isoformat()
    return f"{original.sender},{original.identifier},{sent}"


def _area_names(conn: Connection, codes: list[str]) -> dict[str, str]:
    return {row.code: row.name for row in
            conn.execute(select(areas.c.code, areas.c.name).where(areas.c.code.in_(codes)))}


def _public_url(path: str) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


# --- the Atom feed -------------------------------------------------------------------

@bp.get("/feeds/alerts.atom")
def alerts_feed():
    """Actual alerts being sent or sent, not expired; a withdrawn one simply leaves the feed."""
    now = utcnow()
    with engine().connect() as conn:
        rows = conn.execute(
            select(announcements)
            .where(announcements.c.status == "actual", announcements.c.state.in_(FEED_STATES),
                   announcements.c.msg_type != "cancel",
                   or_(announcements.c.expires.is_(None), announcements.c.expires > now))
            .order_by(announcements.c.sent.desc(), announcements.c.id.desc())
            .limit(FEED_SIZE)).all()
    entries = [FeedEntry(entry_id=_public_url(f"/a/{row.id}"), title=row.headline,
                         updated=as_utc(row.sent), summary=row.body,
                         cap_url=_public_url(f"/api/v1/announcements/{row.id}.cap"))
               for row in rows]
    feed = atom_feed(entries, feed_id=_public_url("/feeds/alerts.atom"),
                     title=current_app.config["OFFICE_NAME"],
                     updated=entries[0].updated if entries else now,
                     self_url=_public_url("/feeds/alerts.atom"))
    return Response(feed, mimetype=ATOM_MEDIA_TYPE)


# --- OpenAPI -------------------------------------------------------------------------

@bp.get("/api/v1/openapi.json")
def openapi_document():
    return Response(OPENAPI_DOCUMENT.read_bytes(), mimetype="application/json")
