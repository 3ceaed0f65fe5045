"""CAP 1.2 in and out, the Atom feed of alerts, and the OpenAPI description of the JSON API.

A CAP alert from another system goes through the same lifecycle functions as
the API and the console: each ``<info>`` block becomes an announcement awaiting
approval, an Update supersedes the alert it references once approved, and a
Cancel withdraws at once and corrects everyone already reached.

The announcements table holds one language per row, so a block in a second
language is stored as its own announcement whose identifier is the alert's
followed by ``#<language>`` (``450702-0001`` and ``450702-0001#en``). Those rows
are one alert's "language group": CAP output joins them again into one
``<alert>`` with an ``<info>`` per language.
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import Connection, or_, select
from werkzeug.exceptions import RequestEntityTooLarge

from gateway import announcements as lifecycle
from gateway import api
from gateway.api import ApiError, engine, token_required
from gateway.db import as_utc, utcnow
from gateway.schema import announcements, areas
from messages.announcement import LANGUAGES, AnnouncementInput
from messages.cap import (
    CAP_MEDIA_TYPE, CapAlert, CapError, CapExport, CapInfo, FeedEntry, atom_feed, parse_cap,
    referenced_identifiers, to_cap,
)

bp = Blueprint("interop", __name__)

MAX_CAP_BYTES = 1_000_000
# Approved at some point by a second person: what the public may read, even once withdrawn.
PUBLIC_STATES = ("approved", "sending", "done", "cancelled", "superseded")
FEED_STATES = ("sending", "done")
FEED_SIZE = 100  # announcements without an expiry would otherwise stay in the feed forever
ATOM_MEDIA_TYPE = "application/atom+xml"
OPENAPI_DOCUMENT = Path(__file__).with_name("openapi.json")
STILL_IN_FORCE = lifecycle.OPEN_STATES + lifecycle.LIVE_STATES


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
    stored = {"identifier": _language_identifier(alert.identifier, "en", first=False),
              "sender": alert.sender}
    for name, value in stored.items():
        limit = announcements.c[name].type.length
        if len(value) > limit:
            raise ApiError(f"the CAP {name} is too long: at most {limit} characters can be stored "
                           "(an identifier's further languages add '#en' or '#zh')", 400, name)


def _announce_over_cap(alert: CapAlert):
    with engine().begin() as conn:
        _refuse_second_delivery(conn, alert.identifier)
        originals = _referenced_groups(conn, alert.references)
        created = [lifecycle.create(conn, _pointing_at_original(info, originals), g.user,
                                    sender=alert.sender,
                                    identifier=_language_identifier(alert.identifier, info.language,
                                                                     first=number == 0))
                   for number, info in enumerate(alert.infos)]
        rows = [lifecycle.get(conn, announcement_id) for announcement_id in created]
    return jsonify({"identifier": alert.identifier, "msg_type": alert.msg_type,
                    "announcements": [{"id": row.id, "identifier": row.identifier,
                                       "language": row.language, "state": row.state}
                                      for row in rows]}), 201


def _pointing_at_original(info: AnnouncementInput,
                          originals: list[dict[str, object]]) -> AnnouncementInput:
    """An Update's block, referencing the stored announcement it replaces.

    The newest referenced alert is the one in force (CAP lists the whole chain);
    its block in the same language is replaced, or its first block if it had none.
    """
    if not originals:
        return info
    newest = originals[-1]
    original = newest.get(info.language) or next(iter(newest.values()))
    return replace(info, references=original.identifier)


def _cancel_over_cap(alert: CapAlert):
    corrections = {info.language: info.body for info in alert.infos}
    with engine().begin() as conn:
        targets = [row for group in _referenced_groups(conn, alert.references)
                   for row in group.values() if row.state in STILL_IN_FORCE]
        if not targets:
            raise ApiError("every announcement this Cancel references is already withdrawn", 409,
                           "references")
        outcomes = [lifecycle.cancel(conn, row.id, g.user,
                                     corrections.get(row.language, alert.infos[0].body),
                                     sender=current_app.config["CAP_SENDER"])
                    for row in targets]
        states = [lifecycle.get(conn, row.id).state for row in targets]
    queued = [lifecycle.follow_up(outcome) for outcome in outcomes]
    return jsonify({"identifier": alert.identifier, "msg_type": alert.msg_type,
                    "cancelled": [{"id": row.id, "identifier": row.identifier, "state": state,
                                   "correction_id": outcome.to_plan[0] if outcome.to_plan else None}
                                  for row, state, outcome in zip(targets, states, outcomes)],
                    "planning_queued": all(queued)}), 201


def _refuse_second_delivery(conn: Connection, identifier: str) -> None:
    if _language_group(conn, identifier):
        raise ApiError(f"alert {identifier} was already received; send an Update or a Cancel "
                       "that references it", 409, "identifier")


def _referenced_groups(conn: Connection, references: str | None) -> list[dict[str, object]]:
    """The language groups of the referenced alerts, oldest reference first; all must be known."""
    identifiers = referenced_identifiers(references)
    groups = [_language_group(conn, identifier) for identifier in identifiers]
    unknown = [identifier for identifier, group in zip(identifiers, groups) if not group]
    if unknown:
        raise ApiError(f"the alert references {', '.join(unknown)}, which this gateway has no "
                       "announcement for", 422, "references", unknown=unknown)
    return groups


# --- language groups -----------------------------------------------------------------

def _language_identifier(alert_identifier: str, language: str, *, first: bool) -> str:
    return alert_identifier if first else f"{alert_identifier}#{language}"


def _alert_identifier(announcement_identifier: str) -> str:
    for language in LANGUAGES:
        if announcement_identifier.endswith(f"#{language}"):
            return announcement_identifier[:-len(language) - 1]
    return announcement_identifier


def _language_group(conn: Connection, alert_identifier: str) -> dict[str, object]:
    """Language -> announcement for every stored block of one alert, in the order received."""
    names = [alert_identifier] + [f"{alert_identifier}#{language}" for language in LANGUAGES]
    rows = conn.execute(select(announcements).where(announcements.c.identifier.in_(names))
                        .order_by(announcements.c.id)).all()
    return {row.language: row for row in rows}


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
    """The announcement with its public blocks in other languages, as one CAP alert."""
    group = _language_group(conn, _alert_identifier(row.identifier)).values()
    blocks = sorted([row] + [other for other in group if other.id != row.id and _is_public(other)],
                    key=lambda block: block.id)
    names = _area_names(conn, [code for block in blocks for code in json.loads(block.areas)])
    return CapExport(
        identifier=_alert_identifier(row.identifier), sender=row.sender,
        sent=as_utc(row.sent or row.created_at), status=row.status, msg_type=row.msg_type,
        references=_references(conn, row.supersedes_id),
        infos=[_cap_info(block, names) for block in blocks])


def _cap_info(row, area_names: dict[str, str]) -> CapInfo:
    return CapInfo(
        language=row.language, category=row.category, event=row.event, urgency=row.urgency,
        severity=row.severity, certainty=row.certainty, headline=row.headline,
        description=row.body, instruction=row.instruction, expires=as_utc(row.expires),
        web=_public_url(f"/a/{row.id}"),
        areas=[(code, area_names.get(code, code)) for code in json.loads(row.areas)])


def _references(conn: Connection, original_id: int | None) -> str | None:
    """CAP's ``sender,identifier,sent`` for the announcement this one replaces or cancels."""
    if original_id is None:
        return None
    original = lifecycle.get(conn, original_id)
    sent = as_utc(original.sent or original.created_at).replace(microsecond=0).isoformat()
    return f"{original.sender},{_alert_identifier(original.identifier)},{sent}"


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
