"""The rq jobs. They take ids, never objects, and run inside the worker's app context.

``deliver_batch`` claims its rows in the ledger (leased to this worker, see
``gateway.delivery.workers``) before calling the provider, and hands the channel
``FLUSH_EVERY`` sends at a time, recording their results after each chunk, so
progress shows while a batch runs and a crash loses little. Before each chunk
it checks it still holds the rows (in the transaction writing the chunk before
down; the worker's heartbeat extends their lease), so a row taken back is never
sent by two workers at once. Results the provider gave are kept until the database takes
them, however long it is away: a send that went out is never sent again for want
of a place to write it down.
"""
from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

import redis
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from channels.base import ChannelError, Outgoing, Receipt
from gateway.delivery import (call_lines, escalation, lifecycle, media, metrics, providers, queues,
                              workers)
from gateway.store import ledger, roster, speakers
from gateway.store.db import as_utc, engine, utcnow
from gateway.delivery.planner import plan, planned_channels
from gateway.store.roster import beneath
from gateway.store.schema import announcements, delivery_counts, devices, residents
from messages.render import Rendered

FLUSH_EVERY = 50
#: Longest wait between retries of one delivery after a transient error.
MAX_RETRY_DELAY_SECONDS = 300
log = logging.getLogger(__name__)


def plan_announcement(announcement_id: int) -> dict[str, int]:
    return plan(engine(), announcement_id, current_app.extensions["policy"])


def prepare_speech(announcement_id: int) -> int:
    """Make, while the announcement awaits approval, every speech file its loudspeakers and calls
    will play (``media.broadcast_for``, ``media.rendered_for``: once per text language and voice),
    so that once approved no village waits for espeak-ng. Sending still makes whatever is missing
    then (a file lost with its disk). Returns how many renderings were asked for."""
    with engine().connect() as conn:
        announcement = lifecycle.get(conn, announcement_id)
        if announcement.state not in ("awaiting_approval", *lifecycle.LIVE_STATES):
            return 0
        wanted = _speech_wanted(conn, announcement)
    for channel, language, spoken in wanted:
        _rendered_in(announcement, channel, language, spoken)
    return len(wanted)


def _speech_wanted(conn, announcement) -> set[tuple[str, str, str | tuple[str, ...] | None]]:
    """(channel, text language, spoken language(s)) as the send jobs will ask for them: each
    loudspeaker's languages in order, each resident's text and spoken language for calls."""
    channels = planned_channels(announcement, current_app.config)
    codes = json.loads(announcement.areas)
    wanted: set[tuple[str, str, str | tuple[str, ...] | None]] = set()
    if "loudspeaker" in channels:
        ids = conn.execute(select(devices.c.id)
                           .where(beneath(devices.c.area_code, codes))).scalars().all()
        spoken = {}
        for start in range(0, len(ids), 1000):  # bounded IN lists
            spoken.update(speakers.device_languages(conn, ids[start:start + 1000]))
        wanted |= {("loudspeaker", announcement.language, languages)
                   for languages in set(spoken.values())}
        if len(spoken) < len(ids):  # devices with no languages set play the announcement's
            wanted.add(("loudspeaker", announcement.language, None))
    if "voice" in channels:
        written_in = set(lifecycle.languages(conn, announcement))
        for resident in conn.execute(
                select(residents.c.language, residents.c.spoken_language).distinct()
                .where(beneath(residents.c.area_code, codes),
                       residents.c.retired_at.is_(None))):
            wanted.add(("voice", lifecycle.language_for(resident, written_in, announcement),
                        resident.spoken_language))
    return wanted


@dataclass
class Results:
    """Send outcomes waiting to be written to the ledger."""

    done: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    failed: list = field(default_factory=list)
    invalid: list = field(default_factory=list)  # failed rows whose number is dead: (row, reason)
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
    owner, lease = workers.process_name(), workers.lease(current_app)
    with engine().begin() as conn:
        announcement = lifecycle.get(conn, announcement_id)
        if announcement.state not in lifecycle.LIVE_STATES:
            ledger.cancel_pending(conn, announcement_id, f"announcement {announcement.state}")
            return 0
        rows = ledger.claim(conn, announcement_id, channel, batch=batch, owner=owner, lease=lease)
    workers.hold(row.id for row in rows)
    try:
        _send_claimed(announcement, channel, batch, rows, owner)
    except BaseException:
        # Whatever this job had not written down may or may not have gone out: the
        # reconciler takes it back once the lease runs out, and counts it.
        workers.abandon(row.id for row in rows)
        raise
    finally:
        workers.let_go(row.id for row in rows)
    if rows:
        _finish_if_done(announcement_id)
    return len(rows)


def _send_claimed(announcement, channel: str, batch: int, rows, owner: str) -> None:
    # (language, spoken language; for a loudspeaker its languages in order)
    rendered: dict[tuple[str, str | tuple[str, ...] | None], Rendered] = {}
    held = {row.id for row in rows}  # just claimed; each write-down checks the next chunk
    for start in range(0, len(rows), FLUSH_EVERY):
        results = Results()
        paused = not _send_chunk(announcement, channel, [
            row for row in rows[start:start + FLUSH_EVERY] if row.id in held], rendered, results)
        following = rows[start + FLUSH_EVERY:]
        if paused:
            results.hold(following)
        held = _write_down(announcement, channel, batch, results, owner,
                           [] if paused else [row.id for row in following[:FLUSH_EVERY]])
        if paused:
            break


def _send_chunk(announcement, channel: str, rows, rendered: dict, results: Results) -> bool:
    """Send claimed deliveries and note the outcomes; False when the channel got paused."""
    expires = as_utc(announcement.expires)
    if expires and utcnow() >= expires:
        results.failed.extend((row, "the announcement expired before this delivery was sent")
                              for row in rows)
        return True
    spoken = _spoken_languages(channel, rows)
    for row in rows:
        key = (row.language, spoken.get(row.recipient_id))
        if key not in rendered:
            rendered[key] = _rendered_in(announcement, channel, *key)
    limiter = providers.limiter(channel)
    waits = metrics.Waits(_pace(channel, limiter, rows))
    started = time.monotonic()
    try:
        outcomes = providers.sender(channel).send_many(
            [Outgoing(row.id, announcement.id, row.address,
                      rendered[row.language, spoken.get(row.recipient_id)],
                      providers.callback_url(channel, row.id)) for row in rows],
            waits)
    finally:
        limiter.finished()
    metrics.record_sends(channel, outcomes, waited=waits.seconds,
                         sending=time.monotonic() - started - waits.seconds)
    for count, (row, outcome) in enumerate(zip(rows, outcomes), 1):
        if channel == "voice" and not isinstance(outcome, Receipt):
            call_lines.release(row.id)  # the call was not placed
        if isinstance(outcome, Receipt):
            results.done[outcome.status].append((row.id, outcome.provider_id, None))
        elif not _note_error(announcement, channel, row, outcome, results):
            results.hold(rows[count - 1:])
            return False
    return True


def _pace(channel: str, limiter, rows) -> Callable[[], float]:
    """What each send waits for: the rate limiter's turn; a call first a free line
    (``call_lines``), taken for the row it is about to place (``send_many`` paces each message
    in order, just before sending it)."""
    if channel != "voice":
        return limiter.wait_turn
    upcoming = iter(rows)

    def line_then_turn() -> float:
        return call_lines.take(next(upcoming).id) + limiter.wait_turn()
    return line_then_turn


def _spoken_languages(channel: str, rows) -> dict[int, str | tuple[str, ...]]:
    """A call's recipient → the language it speaks to them; a loudspeaker → the languages its
    village (or itself) speaks, in order (``gateway.store.speakers``); other channels need none."""
    if channel not in media.SPOKEN_CHANNELS:
        return {}
    with engine().connect() as conn:
        if channel == "loudspeaker":
            return speakers.device_languages(conn, (row.recipient_id for row in rows))
        return roster.spoken_languages(conn, (row.recipient_id for row in rows))


def _rendered_in(announcement, channel: str, language: str,
                 spoken: str | tuple[str, ...] | None = None) -> Rendered:
    """The announcement's text in one language, rendered (a call's audio in the voice of the
    ``spoken`` language; a loudspeaker's in each of its ``spoken`` languages in turn); looked
    up once per language and voice per batch."""
    with engine().connect() as conn:
        if channel == "loudspeaker":
            texts = {text_language: lifecycle.in_language(conn, announcement, text_language)
                     for text_language in lifecycle.languages(conn, announcement)}
        else:
            text = lifecycle.in_language(conn, announcement, language)
    if channel == "loudspeaker":
        return media.broadcast_for(texts, announcement.language, spoken or ())
    return media.rendered_for(text, channel, text.language, spoken)


def _note_error(announcement, channel: str, row, error: ChannelError, results: Results) -> bool:
    if error.pauses_channel:
        queues.pause_channel(channel, error.retry_after or 3600, str(error))
        results.held_reason = str(error)
        results.retry_after = max(results.retry_after, error.retry_after or 3600)
        return False
    if error.permanent:
        results.failed.append((row, str(error)))
        if error.address_invalid:
            results.invalid.append((row, str(error)))
    elif utcnow() >= retry_deadline(announcement):
        results.failed.append((row, f"gave up after {row.attempts} tries: {error}"))
    else:
        results.retry.append((row, str(error)))
        results.retry_after = max(results.retry_after, error.retry_after or 0)
    return True


def retry_deadline(announcement) -> datetime:
    """Transient errors are retried until the notice expires or its severity's retry budget
    (``RETRY_BUDGET_MINUTES``, counted from approval) runs out, whichever comes first."""
    budgets = current_app.config["RETRY_BUDGET_MINUTES"]
    minutes = budgets.get(announcement.severity, budgets["unknown"])
    deadline = as_utc(announcement.sent or announcement.created_at) + timedelta(minutes=minutes)
    expires = as_utc(announcement.expires)
    return min(deadline, expires) if expires else deadline


def _wait_for_database(doing: str, channel: str, batch: int, write):
    """Run ``write(conn)`` in a transaction, waiting out a database outage: results the
    provider gave are kept in memory until they are written, never dropped."""
    backoff = 1.0
    while True:
        try:
            with engine().begin() as conn:
                return write(conn)
        except SQLAlchemyError as error:
            log.warning("cannot %s %s batch %d (%s); trying again in %.0f s",
                        doing, channel, batch, error, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, workers.MAX_BACKOFF_SECONDS)


def _write_down(announcement, channel: str, batch: int, results: Results, owner: str,
                next_ids: list[int]) -> set[int]:
    """Write a chunk's results and, in the same transaction, find which rows of the next chunk
    the job still holds (``ledger.held_by``): only those may be sent. A row is taken from a
    worker that stopped (frozen past its lease) or blanked by a resident's erasure."""
    if not len(results) and not next_ids:
        return set()

    def write(conn) -> tuple[dict[str, int], set[int]]:
        escalated = _record(conn, announcement, channel, batch, results) if len(results) else {}
        return escalated, ledger.held_by(conn, next_ids, owner)
    escalated, held = _wait_for_database("record the results of", channel, batch, write)
    if not len(results):
        return held
    try:
        _queue_follow_ups(announcement, channel, batch, results, escalated)
    except redis.RedisError as error:
        log.warning("cannot queue the follow-ups of %s batch %d (%s); the reconciler will",
                    channel, batch, error)
    return held


def _record(conn, announcement, channel: str, batch: int, results: Results) -> dict[str, int]:
    """Write a chunk's results; returns the escalations it planned per channel."""
    for status, outcomes in results.done.items():
        ledger.settle(conn, announcement.id, channel, status, outcomes)
    ledger.settle(conn, announcement.id, channel, "failed",
                  [(row.id, None, reason) for row, reason in results.failed])
    for row, reason in results.invalid:
        escalation.number_invalid(conn, announcement.id, row.recipient_id, row.address, reason)
    escalated = escalation.escalate(conn, announcement, channel, batch,
                                    [row.recipient_id for row, _ in results.failed])
    for row, error in results.retry:
        ledger.reschedule(conn, announcement.id, channel, [row.id], error)
    if results.held:
        ledger.reschedule(conn, announcement.id, channel, results.held, results.held_reason)
        ledger.forgive_attempt(conn, results.held)
    return escalated


def _queue_follow_ups(announcement, channel: str, batch: int, results: Results,
                      escalated: dict[str, int]) -> None:
    for fallback in escalated:
        queues.enqueue_batches(announcement.id, fallback, [escalation.batch_for(batch)])
    if results.retry or results.held:
        attempts = max((row.attempts for row, _ in results.retry), default=1)
        delay = max(results.retry_after, retry_delay(attempts))
        queues.schedule_retry(announcement.id, channel, batch, delay)


def retry_delay(attempts: int) -> float:
    """The wait before the next try of a delivery tried ``attempts`` times and failed transiently:
    ``RETRY_DELAY_SECONDS``, doubling with each try, at most ``MAX_RETRY_DELAY_SECONDS``."""
    return min(MAX_RETRY_DELAY_SECONDS,
               current_app.config["RETRY_DELAY_SECONDS"] * 2 ** min(max(attempts, 1) - 1, 16))


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
