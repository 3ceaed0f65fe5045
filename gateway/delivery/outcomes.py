"""A provider's later word on one delivery (a status callback, a keypress, a device ack).

Statuses only move forward. A failure ends the delivery and escalates to the
resident's next channel, except an unanswered or busy call, which is tried
again after ``VOICE_RETRY_DELAY_SECONDS`` up to ``VOICE_MAX_ATTEMPTS`` calls.
A vulnerable resident (visually impaired, or 65 and over) is called again in the
same way when they answered a ``severe`` or ``extreme`` notice without pressing 1:
for them such a notice is not done until confirmed.

A provider's callback speaks only for the message or call it names: when its
id (Twilio's ``MessageSid``/``CallSid``) is not the one recorded for the
delivery, nothing changes and a warning is logged (the webhook still answers
200, so the provider does not retry it).
"""
from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select

from channels.base import StatusUpdate
from gateway.delivery import escalation, queues
from gateway.store import ledger
from gateway.store.db import engine, utcnow
from gateway.store.schema import announcements, deliveries, residents

CONFIRM_SEVERITIES = ("severe", "extreme")
VULNERABLE_AGE = 65
UNCONFIRMED = "answered but 1 was not pressed"

log = logging.getLogger(__name__)


def apply(delivery_id: int, update: StatusUpdate, *, from_provider: bool = False) -> bool:
    """Record the update; returns whether the ledger changed.

    ``from_provider``: the update is a provider's callback, which must name the
    provider id recorded for the delivery (or none is recorded yet).
    """
    config = current_app.config
    escalated: dict[str, int] = {}
    with engine().begin() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
        if row is None:
            return False
        if from_provider and not ledger.provider_matches(row.provider_id, update.provider_id):
            log.warning("refused a %s callback for delivery %s: it names %r, the delivery %r",
                        row.channel, delivery_id, update.provider_id, row.provider_id)
            return False
        unconfirmed = update.status == "delivered" and _must_confirm(conn, row)
        retryable_call = row.channel == "voice" and (
            unconfirmed or (update.status == "failed" and not update.permanent))
        if retryable_call and row.attempts < config["VOICE_MAX_ATTEMPTS"] \
                and row.status in ("sending", "sent"):
            ledger.reschedule(conn, row.announcement_id, row.channel, [row.id],
                              UNCONFIRMED if unconfirmed else update.error or "not answered",
                              from_status=row.status)
            call_again = True
        else:
            call_again = False
            error = update.error
            if retryable_call:
                error = (f"not confirmed after {row.attempts} calls: {UNCONFIRMED}" if unconfirmed
                         else f"not answered after {row.attempts} calls: {error}")
            if not ledger.transition(conn, row.id, update.status, provider_id=update.provider_id,
                                     error=error, provider_must_match=from_provider):
                return False
            if update.status == "failed":
                escalated = _escalate(conn, row)
    if call_again:
        queues.schedule_retry(row.announcement_id, row.channel, row.batch,
                              config["VOICE_RETRY_DELAY_SECONDS"])
    for channel in escalated:
        queues.enqueue_batches(row.announcement_id, channel, [escalation.batch_for(row.batch)])
    return True


def _escalate(conn, row) -> dict[str, int]:
    announcement = conn.execute(select(announcements)
                                .where(announcements.c.id == row.announcement_id)).first()
    return escalation.escalate(conn, announcement, row.channel, row.batch, [row.recipient_id])


def _must_confirm(conn, row) -> bool:
    if row.channel != "voice":
        return False
    announcement = conn.execute(select(announcements.c.severity, announcements.c.sent)
                                .where(announcements.c.id == row.announcement_id)).first()
    if announcement.severity not in CONFIRM_SEVERITIES:
        return False
    person = conn.execute(select(residents.c.visually_impaired, residents.c.birth_year)
                          .where(residents.c.id == row.recipient_id)).first()
    return person is not None and is_vulnerable(person, (announcement.sent or utcnow()).year)


def is_vulnerable(person, year: int) -> bool:
    return bool(person.visually_impaired) or bool(
        person.birth_year and year - person.birth_year >= VULNERABLE_AGE)
