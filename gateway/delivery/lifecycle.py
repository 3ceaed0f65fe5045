"""The life of an announcement: create, approve (two-person rule), reject, cancel, update.

The API, the console and CAP import all call these functions, so the rules are
the same whichever way a notice comes in. Each function works inside the
caller's transaction and returns what the caller must do after commit (queue a
plan job), so nothing is queued for a change that was rolled back.
"""
from __future__ import annotations

import json
import uuid
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Collection

import redis

from sqlalchemy import Connection, insert, select, update

from gateway.store import audit, ledger
from gateway.store.ledger.retention import retained
from gateway.delivery import queues
from gateway.store.accounts import APPROVERS
from gateway.store.db import as_utc, utcnow
from gateway.store.schema import announcement_texts, announcements, areas
from messages.announcement import (LIMITS, STATUSES, AnnouncementInput, ValidationError,
                                   clean_text, is_drill, visible)
from messages.render_types import RenderContext
from messages.withdrawal import correction_headline, withdrawal_notice

# awaiting_approval -> approved -> sending -> done; or rejected / cancelled / superseded.
log = logging.getLogger(__name__)
OPEN_STATES = ("draft", "awaiting_approval")
MAX_ID = 2**31 - 1
LIVE_STATES = ("approved", "sending", "done")
STILL_IN_FORCE = OPEN_STATES + LIVE_STATES
# Approved at some point by a second person (or, for a withdrawal notice, pre-approved wording).
RELEASED_STATES = LIVE_STATES + ("cancelled", "superseded")


class ActionRefused(Exception):
    """The action is not allowed now; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Outcome:
    """What an action leaves to do once its transaction has committed."""

    announcement_id: int
    to_plan: list[int]
    to_stop: list[int] = field(default_factory=list)  # loudspeakers may hold these
    update_id: int | None = None  # a correction written with a cancel, awaiting approval


def follow_up(outcome: Outcome) -> bool:
    """Queue planning and loudspeaker stops after commit.

    Returns False when Redis is unreachable: the change stands and the
    reconciler queues the planning later.
    """
    try:
        for announcement_id in outcome.to_plan:
            queues.enqueue_plan(announcement_id)
        for announcement_id in outcome.to_stop:
            queues.enqueue_stop(announcement_id)
    except (redis.RedisError, OSError):
        log.exception("could not queue the follow-up of announcement %s; `flask reconcile` will "
                      "plan it", outcome.announcement_id,
                      extra={"announcement_id": outcome.announcement_id})
        return False
    return True


def queue_speech(announcement_id: int, data: AnnouncementInput) -> bool:
    """After a submission commits, queue the speech its approval will play, so no village waits
    for it then. False when there is nothing to say aloud, or Redis is unreachable: sending
    makes the speech instead, as it always can."""
    # Loudspeakers first: a whole village waits on them.
    channel = next((name for name in ("loudspeaker", "voice") if name in data.channels), None)
    if channel is None or data.status == "draft":
        return False
    try:
        queues.enqueue_speech(announcement_id, channel)
    except (redis.RedisError, OSError):
        log.warning("could not queue the speech of announcement %s; sending will make it",
                    announcement_id, extra={"announcement_id": announcement_id})
        return False
    return True


def get(conn: Connection, announcement_id: int):
    if not 0 < announcement_id <= MAX_ID:  # beyond the column, no database can hold it
        raise ActionRefused(f"there is no announcement {announcement_id}", 404)
    row = conn.execute(select(announcements).where(announcements.c.id == announcement_id)).first()
    if row is None:
        raise ActionRefused(f"there is no announcement {announcement_id}", 404)
    return row


def in_force(conn: Connection, statuses: Collection[str] = STATUSES, *,
             withdrawals: bool = False) -> list:
    """Notices released and not expired, of these ``statuses``, newest first: what the hotline
    plays and a destination's feed carries. With ``withdrawals``, also the withdrawal notices
    of notices that would still be in force: what grid workers work on, as those they told
    a withdrawn notice at the door need telling it is withdrawn (``reach.audience_clause``)."""
    rows = conn.execute(select(announcements)
                        .where(announcements.c.state.in_(LIVE_STATES),
                               announcements.c.status.in_(statuses),
                               *(() if withdrawals else (announcements.c.msg_type != "cancel",)))
                        .order_by(announcements.c.id.desc())).all()
    withdrawn = [row.supersedes_id for row in rows if row.msg_type == "cancel"]
    expiry_of_withdrawn = dict(conn.execute(
        select(announcements.c.id, announcements.c.expires)
        .where(announcements.c.id.in_(withdrawn))).all()) if withdrawn else {}
    now = utcnow()

    def expires(row):
        return expiry_of_withdrawn.get(row.supersedes_id) if row.msg_type == "cancel" else row.expires

    return [row for row in rows if expires(row) is None or as_utc(expires(row)) > now]


def translations(conn: Connection, announcement_id: int) -> list:
    """The announcement's texts in languages other than its own, in language order."""
    return conn.execute(select(announcement_texts)
                        .where(announcement_texts.c.announcement_id == announcement_id)
                        .order_by(announcement_texts.c.language)).all()


def languages(conn: Connection, announcement) -> list[str]:
    """Every language the announcement has a text in, its own first."""
    return [announcement.language] + [text.language for text in
                                       translations(conn, announcement.id)]


def language_for(resident, written_in: Collection[str], announcement) -> str:
    """A resident's deliveries are in their own language when the announcement has a
    text in it (``written_in``, from ``languages``), else in the announcement's."""
    return resident.language if resident.language in written_in else announcement.language


def in_language(conn: Connection, announcement, language: str):
    """The announcement with its texts in ``language``; as it is when it has none in it."""
    if language == announcement.language:
        return announcement
    text = conn.execute(select(announcement_texts.c.language, announcement_texts.c.headline,
                               announcement_texts.c.body, announcement_texts.c.instruction,
                               announcement_texts.c.event)
                        .where(announcement_texts.c.announcement_id == announcement.id,
                               announcement_texts.c.language == language)).first()
    if text is None:
        return announcement
    return SimpleNamespace(**{**announcement._asdict(), **text._asdict()})


def find_by_reference(conn: Connection, reference: str):
    """An announcement named by its CAP identifier or its number."""
    query = select(announcements).where(announcements.c.identifier == reference)
    if reference.isascii() and reference.isdigit():  # "²" is a digit to isdigit, not to int
        if not 0 < int(reference) <= MAX_ID:
            return None
        query = select(announcements).where(announcements.c.id == int(reference))
    return conn.execute(query).first()


def check_areas(conn: Connection, codes: list[str]) -> None:
    known = {row.code for row in conn.execute(select(areas.c.code).where(areas.c.code.in_(codes)))}
    for index, code in enumerate(codes):
        if code not in known:
            raise ValidationError(f"areas[{index}]", f"{code} is not in the area registry",
                                  "unknown_area", value=code)


def create(conn: Connection, data: AnnouncementInput, author, *, sender: str,
           identifier: str | None = None) -> int:
    """Store a new announcement awaiting approval (or as a draft)."""
    check_areas(conn, data.areas)
    original = replaced(conn, data)
    supersedes = original.id if original else None
    announcement_id = conn.execute(insert(announcements).values(
        identifier=identifier or f"tongbao-{uuid.uuid4().hex}", sender=sender,
        state="draft" if data.status == "draft" else "awaiting_approval",
        status=data.status, msg_type=data.msg_type, references=data.references,
        supersedes_id=supersedes, category=data.category, event=data.event,
        urgency=data.urgency, severity=data.severity, certainty=data.certainty,
        headline=data.headline, body=data.body, instruction=data.instruction,
        language=data.language, areas=json.dumps(data.areas), channels=json.dumps(data.channels),
        expires=data.expires, author_id=author.id, created_at=utcnow(),
    )).inserted_primary_key[0]
    _add_translations(conn, announcement_id, [vars(text) for text in data.translations])
    audit.record(conn, author.name, "create", f"announcement:{announcement_id}",
                 {"headline": data.headline, "status": data.status, "areas": data.areas,
                  "translations": [text.language for text in data.translations]})
    return announcement_id


def replaced(conn: Connection, data: AnnouncementInput):
    """The announcement an update or cancel replaces (None for an alert), checked: it must be
    known and have the same status (a draft may name any)."""
    if data.msg_type not in ("update", "cancel"):
        return None
    if not data.references:
        raise ValidationError("references", f"a {data.msg_type} must name the announcement it "
                              "replaces (its identifier or number)", "required")
    original = find_by_reference(conn, data.references.split(",")[-1].strip())
    if original is None:
        raise ValidationError("references", f"{data.references!r} names no known announcement",
                              "unknown_reference", value=data.references[:40])
    if data.msg_type == "cancel":
        refuse_if_details_deleted(conn, original.id)
    mixed = drill_and_real_mixed(original, data.status) if data.status != "draft" else None
    if mixed:
        raise ValidationError("status", mixed, "drill_and_real_mixed")
    return original


def refuse_if_details_deleted(conn: Connection, announcement_id: int) -> None:
    """A withdrawal goes to whom the original reached, which retention no longer knows."""
    if retained(conn, announcement_id) is not None:
        raise ActionRefused(f"announcement {announcement_id} finished more than RETENTION_DAYS "
                            "ago and its delivery details were deleted: a withdrawal cannot find "
                            "whom it reached; send a new notice to its areas instead")


def drill_and_real_mixed(original, status: str) -> str | None:
    """Why an update or cancel with ``status`` may not replace ``original``, or None.

    It must have the original's status: a drill never touches a real notice, nor the reverse.
    """
    if status == original.status:
        return None
    return (f"status {status} differs from the {original.status} status of announcement "
            f"{original.id} it references; an update or cancel must have the status of what it "
            "replaces, so a drill never touches a real notice, nor the reverse")


def _add_translations(conn: Connection, announcement_id: int, texts: list[dict]) -> None:
    if texts:
        conn.execute(insert(announcement_texts),
                     [{**text, "announcement_id": announcement_id} for text in texts])


def approve(conn: Connection, announcement_id: int, approver) -> Outcome:
    """Approve and release; an ``actual`` announcement needs someone other than its author."""
    row = get(conn, announcement_id)
    if approver.role not in APPROVERS:
        raise ActionRefused("only an approver or an admin may approve", 403)
    if row.state != "awaiting_approval":
        raise ActionRefused(f"announcement {announcement_id} is {row.state}, not awaiting approval")
    if row.status == "actual" and row.author_id == approver.id:
        raise ActionRefused("two-person rule: an actual announcement must be approved by someone "
                            "other than its author", 403)
    mixed = row.supersedes_id and drill_and_real_mixed(get(conn, row.supersedes_id), row.status)
    if mixed:  # stored before drills and real notices were kept apart
        raise ActionRefused(mixed, 422)
    now = utcnow()
    conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                 .values(state="approved", approver_id=approver.id, sent=now))
    audit.record(conn, approver.name, "approve", f"announcement:{announcement_id}",
                 {"status": row.status, "drill": is_drill(row.status)})
    if row.msg_type in ("update", "cancel") and row.supersedes_id:
        original = get(conn, row.supersedes_id)
        if original.state in STILL_IN_FORCE:  # a correction's original is already cancelled
            _withdraw(conn, original.id, approver.name,
                      "cancelled" if row.msg_type == "cancel" else "superseded")
            return Outcome(announcement_id, [announcement_id], [original.id])
    return Outcome(announcement_id, [announcement_id])


def reject(conn: Connection, announcement_id: int, approver, reason: str) -> None:
    row = get(conn, announcement_id)
    if approver.role not in APPROVERS:
        raise ActionRefused("only an approver or an admin may reject", 403)
    if row.state != "awaiting_approval":
        raise ActionRefused(f"announcement {announcement_id} is {row.state}, not awaiting approval")
    reason = clean_text(reason)
    if not visible(reason):
        raise ValidationError("reason", "say why the announcement is rejected", "required")
    conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                 .values(state="rejected", approver_id=approver.id, decision_note=reason))
    audit.record(conn, approver.name, "reject", f"announcement:{announcement_id}", reason)


def cancel(conn: Connection, announcement_id: int, user, *, sender: str,
           correction: str = "", time_zone: str = RenderContext.time_zone) -> Outcome:
    """Cancel at once, with no second person: everyone already reached is told it is withdrawn.

    What goes out is the fixed wording of ``messages.withdrawal`` in every language of
    the original, so each resident reached reads or hears it in the language they were
    reached in; nothing typed here is sent unreviewed. A ``correction`` given with it
    becomes an update of the original awaiting approval (``Outcome.update_id``).
    """
    row = get(conn, announcement_id)
    if user.role not in APPROVERS and user.id != row.author_id:
        raise ActionRefused("only the author, an approver or an admin may cancel", 403)
    correction = clean_text(correction)
    if not visible(correction):
        correction = ""
    if row.state in OPEN_STATES:
        conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                     .values(state="cancelled", decision_note=correction or None))
        audit.record(conn, user.name, "cancel", f"announcement:{announcement_id}", "withdrawn before sending")
        return Outcome(announcement_id, [])
    if row.state not in LIVE_STATES:
        raise ActionRefused(f"announcement {announcement_id} is already {row.state}")
    refuse_if_details_deleted(conn, announcement_id)
    if row.msg_type == "cancel":
        raise ActionRefused(f"announcement {announcement_id} is itself a withdrawal notice and "
                            "cannot be cancelled; send an update of the notice it withdrew")
    if len(correction) > LIMITS["body"]:
        raise ValidationError("correction", f"is {len(correction)} characters long; the limit "
                              f"is {LIMITS['body']}", "too_long", length=len(correction),
                              limit=LIMITS["body"])
    _withdraw(conn, announcement_id, user.name, "cancelled")
    issued = row.sent or row.created_at
    context = RenderContext(time_zone=time_zone)
    withdrawal_id = conn.execute(insert(announcements).values(
        identifier=f"tongbao-{uuid.uuid4().hex}", sender=sender, state="approved",
        status=row.status, msg_type="cancel", references=_cap_reference(row),
        supersedes_id=row.id, category=row.category, event=row.event, urgency=row.urgency,
        severity=row.severity, certainty=row.certainty, headline=row.headline,
        body=withdrawal_notice(row.language, row.headline, issued, context), instruction="",
        language=row.language, areas=row.areas, channels=row.channels, author_id=user.id,
        created_at=utcnow(), sent=utcnow())).inserted_primary_key[0]
    _add_translations(conn, withdrawal_id, [
        {"language": text.language, "headline": text.headline, "event": text.event,
         "body": withdrawal_notice(text.language, text.headline, issued, context),
         "instruction": ""}
        for text in translations(conn, announcement_id)])
    audit.record(conn, user.name, "send", f"announcement:{withdrawal_id}",
                 {"withdrawal_of": announcement_id})
    update_id = (_correction_awaiting_approval(conn, row, user, correction, sender=sender)
                 if correction else None)
    return Outcome(withdrawal_id, [withdrawal_id], [announcement_id], update_id)


def _correction_awaiting_approval(conn: Connection, row, user, correction: str, *,
                                  sender: str) -> int:
    """An update of ``row`` saying ``correction``, under the two-person rule like any other."""
    update_id = conn.execute(insert(announcements).values(
        identifier=f"tongbao-{uuid.uuid4().hex}", sender=sender, state="awaiting_approval",
        status=row.status, msg_type="update", references=_cap_reference(row),
        supersedes_id=row.id, category=row.category, event=row.event, urgency=row.urgency,
        severity=row.severity, certainty=row.certainty,
        headline=correction_headline(row.language, row.headline), body=correction,
        instruction="", language=row.language, areas=row.areas, channels=row.channels,
        expires=row.expires, author_id=user.id, created_at=utcnow())).inserted_primary_key[0]
    audit.record(conn, user.name, "create", f"announcement:{update_id}",
                 {"correction_of": row.id, "status": row.status})
    return update_id


def _cap_reference(row) -> str:
    """CAP's ``sender,identifier,sent`` naming ``row``."""
    return f"{row.sender},{row.identifier},{row.sent.isoformat() if row.sent else ''}"


def _withdraw(conn: Connection, announcement_id: int, actor: str, state: str) -> None:
    cancelled = ledger.cancel_pending(conn, announcement_id, f"{state} by {actor}")
    conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                 .values(state=state, finished_at=utcnow()))
    audit.record(conn, actor, "cancel", f"announcement:{announcement_id}",
                 {"state": state, "pending_cancelled": cancelled})
