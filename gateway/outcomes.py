"""A provider's later word on one delivery (a status callback, a keypress, a device ack).

Statuses only move forward. A failure ends the delivery and escalates to the
resident's next channel, except an unanswered or busy call, which is tried
again after ``VOICE_RETRY_DELAY_SECONDS`` up to ``VOICE_MAX_ATTEMPTS`` calls.
"""
from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from channels.base import StatusUpdate
from gateway import escalation, ledger, queues
from gateway.schema import announcements, deliveries


def apply(delivery_id: int, update: StatusUpdate) -> bool:
    """Record the update; returns whether the ledger changed."""
    config = current_app.config
    retry_batch, escalated = None, {}
    with current_app.extensions["engine"].begin() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
        if row is None:
            return False
        error = update.error
        if update.status == "failed" and not update.permanent and row.channel == "voice":
            if row.attempts < config["VOICE_MAX_ATTEMPTS"] and row.status in ("sending", "sent"):
                ledger.reschedule(conn, row.announcement_id, row.channel, [row.id],
                                  error or "not answered", from_status=row.status)
                retry_batch = row.batch
            error = f"not answered after {row.attempts} calls: {error or 'no answer'}"
        if retry_batch is None:
            changed = ledger.transition(conn, row.id, update.status,
                                        provider_id=update.provider_id, error=error)
            if not changed:
                return False
            if update.status == "failed":
                announcement = conn.execute(select(announcements)
                                            .where(announcements.c.id == row.announcement_id)).first()
                escalated = escalation.escalate(conn, announcement, row.channel, row.batch,
                                                [row.recipient_id])
    if retry_batch is not None:
        queues.schedule_retry(row.announcement_id, row.channel, retry_batch,
                              config["VOICE_RETRY_DELAY_SECONDS"])
    for channel in escalated:
        queues.enqueue_batches(row.announcement_id, channel, [escalation.batch_for(row.batch)])
    return True
