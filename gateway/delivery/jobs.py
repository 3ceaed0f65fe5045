"""The rq jobs. They take ids, never objects, and run inside the worker's app context.

``deliver_batch`` claims its rows in the ledger before calling the provider and
hands the channel ``FLUSH_EVERY`` sends at a time, recording their results
after each chunk, so progress shows while a batch runs and a crash loses little.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from channels.base import ChannelError, Outgoing, Receipt
from gateway.delivery import escalation, lifecycle, media, providers, queues
from gateway.store import ledger
from gateway.store.db import as_utc, engine, utcnow
from gateway.delivery.planner import plan
from gateway.store.schema import announcements, delivery_counts
from messages.render import Rendered

FLUSH_EVERY = 50


def plan_announcement(announcement_id: int) -> dict[str, int]:
    return plan(engine(), announcement_id, current_app.extensions["policy"])


@dataclass
class Results:
    """Send outcomes waiting to be written to the ledger."""

    done: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    failed: list = field(default_factory=list)
    retry: list = field(default_factory=list)
    retry_after: float = 0.0
    held: list = field(default_factory=list)
    held_reason: str = ""

    def hold(self, rows) -> None:
        """Put back unsent rows for a later try, without counting the try against them."""
        self.held.extend(row.id for row in rows)

    def __len__(self) -> int:
        return (sum(map(len, self.done.values())) + len(self.failed) + len(self.retry)
                + len(self.held))


def deliver_batch(announcement_id: int, channel: str, batch: int) -> int:
    """Send one batch of one channel; returns how many sends were attempted."""
    pause = queues.channel_pause(channel)
    if pause is not None:
        queues.schedule_retry(announcement_id, channel, batch, pause[0])
        return 0
    with engine().begin() as conn:
        announcement = lifecycle.get(conn, announcement_id)
        if announcement.state not in lifecycle.LIVE_STATES:
            ledger.cancel_pending(conn, announcement_id, f"announcement {announcement.state}")
            return 0
        rows = ledger.claim(conn, announcement_id, channel, batch=batch)
    if not rows:
        return 0
    rendered: dict[str, Rendered] = {}
    for start in range(0, len(rows), FLUSH_EVERY):
        results = Results()
        paused = not _send_chunk(announcement, channel, rows[start:start + FLUSH_EVERY],
                                 rendered, results)
        if paused:
            results.hold(rows[start + FLUSH_EVERY:])
        _flush(announcement, channel, batch, results)
        if paused:
            break
    _finish_if_done(announcement_id)
    return len(rows)


def _send_chunk(announcement, channel: str, rows, rendered: dict, results: Results) -> bool:
    """Send claimed deliveries and note the outcomes; False when the channel got paused."""
    expires = as_utc(announcement.expires)
    if expires and utcnow() >= expires:
        results.failed.extend((row, "the announcement expired before this delivery was sent")
                              for row in rows)
        return True
    for row in rows:
        if row.language not in rendered:
            rendered[row.language] = _rendered_in(announcement, channel, row.language)
    limiter = providers.limiter(channel)
    try:
        outcomes = providers.sender(channel).send_many(
            [Outgoing(row.id, announcement.id, row.address, rendered[row.language],
                      providers.callback_url(channel, row.id)) for row in rows],
            limiter.wait_turn)
    finally:
        limiter.finished()
    for count, (row, outcome) in enumerate(zip(rows, outcomes), 1):
        if isinstance(outcome, Receipt):
            results.done[outcome.status].append((row.id, outcome.provider_id, None))
        elif not _note_error(channel, row, outcome, results):
            results.hold(rows[count - 1:])
            return False
    return True


def _rendered_in(announcement, channel: str, language: str) -> Rendered:
    """The announcement's text in one language, rendered; looked up once per language per batch."""
    with engine().connect() as conn:
        text = lifecycle.in_language(conn, announcement, language)
    return media.rendered_for(text, channel, text.language)


def _note_error(channel: str, row, error: ChannelError, results: Results) -> bool:
    if error.pauses_channel:
        queues.pause_channel(channel, error.retry_after or 3600, str(error))
        results.held_reason = str(error)
        results.retry_after = max(results.retry_after, error.retry_after or 3600)
        return False
    if error.permanent:
        results.failed.append((row, str(error)))
    elif row.attempts >= current_app.config["MAX_ATTEMPTS"]:
        results.failed.append((row, f"gave up after {row.attempts} tries: {error}"))
    else:
        results.retry.append((row, str(error)))
        results.retry_after = max(results.retry_after, error.retry_after or 0)
    return True


def _flush(announcement, channel: str, batch: int, results: Results) -> None:
    if not len(results):
        return
    with engine().begin() as conn:
        for status, outcomes in results.done.items():
            ledger.settle(conn, announcement.id, channel, status, outcomes)
        ledger.settle(conn, announcement.id, channel, "failed",
                      [(row.id, None, reason) for row, reason in results.failed])
        escalated = escalation.escalate(conn, announcement, channel, batch,
                                        [row.recipient_id for row, _ in results.failed])
        for row, error in results.retry:
            ledger.reschedule(conn, announcement.id, channel, [row.id], error)
        if results.held:
            ledger.reschedule(conn, announcement.id, channel, results.held, results.held_reason)
            ledger.forgive_attempt(conn, results.held)
    for fallback in escalated:
        queues.enqueue_batches(announcement.id, fallback, [escalation.batch_for(batch)])
    if results.retry or results.held:
        attempts = max((row.attempts for row, _ in results.retry), default=1)
        delay = max(results.retry_after,
                    current_app.config["RETRY_DELAY_SECONDS"] * 2 ** (attempts - 1))
        queues.schedule_retry(announcement.id, channel, batch, delay)


def _finish_if_done(announcement_id: int) -> None:
    with engine().begin() as conn:
        busy = conn.execute(select(delivery_counts.c.count)
                            .where(delivery_counts.c.announcement_id == announcement_id,
                                   delivery_counts.c.status.in_(("planned", "queued", "sending")),
                                   delivery_counts.c.count > 0).limit(1)).first()
        if busy is None:
            conn.execute(update(announcements)
                         .where(announcements.c.id == announcement_id,
                                announcements.c.state == "sending")
                         .values(state="done", finished_at=utcnow()))


def reconcile() -> dict[str, int]:
    """Re-queue deliveries stranded by a lost job or a Redis restart; safe to run any time."""
    stale = timedelta(seconds=current_app.config["STALE_SENDING_SECONDS"])
    with engine().begin() as conn:
        reclaimed = ledger.reclaim_stale(conn, stale)
        groups = ledger.pending_batches(conn)
    requeued = 0
    for group in groups:
        if not queues.batch_has_live_job(group.announcement_id, group.channel, group.batch):
            queues.enqueue_batches(group.announcement_id, group.channel, [group.batch])
            requeued += 1
    with engine().connect() as conn:
        approved = conn.execute(select(announcements.c.id)
                                .where(announcements.c.state == "approved")).all()
    stuck_plans = [row.id for row in approved if not queues.plan_has_live_job(row.id)]
    for announcement_id in stuck_plans:
        queues.enqueue_plan(announcement_id)
    return {"batches_requeued": requeued, "stale_groups_reclaimed": len(reclaimed),
            "plans_requeued": len(stuck_plans)}

