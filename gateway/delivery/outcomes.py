"""A provider's later word on one delivery (a status callback, a keypress, a device ack).

Statuses only move forward. A failure ends the delivery and escalates to the
resident's next channel, except a transient one: an unanswered, busy or
transiently failed call is tried again after ``VOICE_RETRY_DELAY_SECONDS`` up
to ``VOICE_MAX_ATTEMPTS`` calls, a message undelivered for a transient reason
is sent again within the notice's retry budget, as a send error would be, and
one that says the account is over a limit (Twilio 30022, 30023) also pauses
the channel. A failure saying the number is invalid marks it on the resident
(``escalation.number_invalid``) before escalating.
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
from gateway.delivery import escalation, jobs, queues
from gateway.delivery.reach import confirmation_required
from gateway.store import ledger
from gateway.store.db import engine, utcnow
from gateway.store.schema import announcements, deliveries, residents

UNCONFIRMED = "answered but 1 was not pressed"

log = logging.getLogger(__name__)


def apply(delivery_id: int, update: StatusUpdate, *, from_provider: bool = False) -> bool:
    """Record the update; returns whether the ledger changed.

    ``from_provider``: the update is a provider's callback, which must name the
    provider id recorded for the delivery (or none is recorded yet), and come
    while the delivery is out: one for a delivery put back to wait for its next
    try (a second "no-answer" for the same call) is about a try already counted.
    """
    config = current_app.config
    escalated: dict[str, int] = {}
    retry_in = None
    with engine().begin() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
        if row is None:
            return False
        if from_provider and not ledger.provider_matches(row.provider_id, update.provider_id):
            log.warning("refused a %s callback for delivery %s: it names %r, the delivery %r",
                        row.channel, delivery_id, update.provider_id, row.provider_id,
                        extra={"delivery_id": delivery_id, "announcement_id": row.announcement_id})
            return False
        if from_provider and row.status in ledger.PENDING:
            log.info("ignored a %s callback (%s) for delivery %s, which waits for its next try",
                     row.channel, update.status, delivery_id,
                     extra={"delivery_id": delivery_id, "announcement_id": row.announcement_id})
            return False
        unconfirmed = update.status == "delivered" and _must_confirm(conn, row)
        transient = update.status == "failed" and not update.permanent
        error = update.error
        if (unconfirmed or transient) and row.status in ("sending", "sent"):
            retry_in, error = _next_try(conn, row, update, unconfirmed)
        if retry_in is not None:
            ledger.reschedule(conn, row.announcement_id, row.channel, [row.id], error,
                              from_status=row.status)
        else:
            if not ledger.transition(conn, row.id, update.status, provider_id=update.provider_id,
                                     error=error, provider_must_match=from_provider):
                return False
            if update.status == "failed":
                if update.address_invalid:
                    escalation.number_invalid(conn, row.announcement_id, row.recipient_id,
                                              row.address, update.error or "invalid number")
                escalated = _escalate(conn, row)
    if update.pauses_channel:
        queues.pause_channel(row.channel, update.retry_after or 3600, update.error or "paused")
    if retry_in is not None:
        queues.schedule_retry(row.announcement_id, row.channel, row.batch, retry_in)
    for channel in escalated:
        queues.enqueue_batches(row.announcement_id, channel, [escalation.batch_for(row.batch)])
    return True


def _next_try(conn, row, update: StatusUpdate, unconfirmed: bool) -> tuple[float | None, str]:
    """(seconds until the next try, or None for no more tries; the error to record).

    A call is made again up to ``VOICE_MAX_ATTEMPTS`` times; a message that
    failed for a transient reason is sent again like a transient send error,
    until the notice's retry budget (``jobs.retry_deadline``) runs out.
    """
    config = current_app.config
    error = update.error or "not answered"
    if row.channel == "voice":
        if row.attempts < config["VOICE_MAX_ATTEMPTS"]:
            return config["VOICE_RETRY_DELAY_SECONDS"], UNCONFIRMED if unconfirmed else error
        return None, (f"not confirmed after {row.attempts} calls: {UNCONFIRMED}" if unconfirmed
                      else f"not answered after {row.attempts} calls: {error}")
    announcement = conn.execute(select(announcements)
                                .where(announcements.c.id == row.announcement_id)).first()
    if utcnow() < jobs.retry_deadline(announcement):
        return max(jobs.retry_delay(row.attempts), update.retry_after or 0), error
    return None, f"gave up after {row.attempts} tries: {error}"


def _escalate(conn, row) -> dict[str, int]:
    announcement = conn.execute(select(announcements)
                                .where(announcements.c.id == row.announcement_id)).first()
    return escalation.escalate(conn, announcement, row.channel, row.batch, [row.recipient_id])


def _must_confirm(conn, row) -> bool:
    if row.channel != "voice":
        return False
    announcement = conn.execute(select(announcements.c.severity, announcements.c.sent)
                                .where(announcements.c.id == row.announcement_id)).first()
    person = conn.execute(select(residents.c.visually_impaired, residents.c.birth_year)
                          .where(residents.c.id == row.recipient_id)).first()
    return person is not None and confirmation_required(
        announcement.severity, person, (announcement.sent or utcnow()).year)
