"""Plays no device has acknowledged in time are sent again, up to ``MAX_ATTEMPTS`` sends, then failed."""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import Connection, select

from gateway.delivery import lifecycle, queues
from gateway.delivery.loudspeakers.acks import CHANNEL
from gateway.store import ledger
from gateway.store.db import as_utc, utcnow
from gateway.store.schema import announcements, deliveries

# A received play may wait behind others and last minutes (repeats): give it this many
# acknowledgement timeouts before asking again.
PLAY_WAIT_FACTOR = 10
NO_ACK = "no acknowledgement from the device"


def resend_unacknowledged(app: Flask, older_than: timedelta, *,
                          ask_all_sent_before: datetime | None = None) -> dict[str, int]:
    """Send again the plays still ``sent`` (no ``received``) after ``older_than``,
    and those ``received`` but not ``played`` after ``PLAY_WAIT_FACTOR`` times that
    (a lost ``played`` ack must not leave a village shown as not yet heard).

    ``ask_all_sent_before`` (the broker came back without its sessions, so acks
    may have been dropped) asks again now for every play not yet acknowledged
    that was sent before it, without counting that send against the delivery.

    Each delivery is sent at most ``MAX_ATTEMPTS`` times; an unacknowledged one
    then fails, a received one stays received. The device recognises a re-sent
    command by its id: it acknowledges again and does not play it twice.
    """
    max_attempts = app.config["MAX_ATTEMPTS"]
    now = utcnow()
    due = {"sent": now - older_than, "delivered": now - older_than * PLAY_WAIT_FACTOR}
    again: dict[tuple[int, str], list] = {}
    failed = 0
    with app.extensions["engine"].begin() as conn:
        for status, due_before in due.items():
            for row in _waiting(conn, status, max(due_before, ask_all_sent_before or due_before)):
                in_doubt = as_utc(row.updated_at) >= due_before  # only the broker's restart
                if in_doubt or row.attempts < max_attempts:
                    again.setdefault((row.announcement_id, status), []).append(row)
                elif status == "sent":
                    ledger.transition(conn, row.id, "failed",
                                      error=f"{NO_ACK} after {row.attempts} sends")
                    failed += 1
                if in_doubt:
                    ledger.forgive_attempt(conn, [row.id])
        for (announcement_id, status), rows in again.items():
            ledger.reschedule(conn, announcement_id, CHANNEL, [row.id for row in rows],
                              f"no '{'received' if status == 'sent' else 'played'}' ack; sent again",
                              from_status=status)
    with app.app_context():
        for (announcement_id, _), rows in again.items():
            _queue_batches(announcement_id, {row.batch for row in rows})
    return {"resent": sum(map(len, again.values())), "failed": failed}


def _waiting(conn: Connection, status: str, since):
    """Loudspeaker deliveries of live announcements left in ``status`` since before ``since``."""
    return conn.execute(
        select(deliveries.c.id, deliveries.c.announcement_id, deliveries.c.batch,
               deliveries.c.attempts, deliveries.c.updated_at)
        .join(announcements, announcements.c.id == deliveries.c.announcement_id)
        .where(deliveries.c.channel == CHANNEL, deliveries.c.status == status,
               deliveries.c.updated_at < since,
               announcements.c.state.in_(lifecycle.LIVE_STATES))).all()


def _queue_batches(announcement_id: int, batches: set[int]) -> None:
    # A batch with a live job is left to it; one that is already running when
    # rows are planned again leaves them to the reconciler.
    idle = [batch for batch in sorted(batches)
            if not queues.batch_has_live_job(announcement_id, CHANNEL, batch)]
    queues.enqueue_batches(announcement_id, CHANNEL, idle)
