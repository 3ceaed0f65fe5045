"""Reports over the ledger: the status of an announcement and who is still not reached.

What counts as reached and confirmed is ``gateway.delivery.reach``; the status,
the unreached list (two sections: not reached, and reached but not confirmed
where confirmation is required) and its CSV all count with it.

``unreached_csv`` is the one writer of the unreached list as CSV (the API's and
the console's). Names and notes come from rosters and providers, so every cell
is made inert for spreadsheets (OWASP's advice against CSV injection): a cell
that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading ``'``, which Excel, LibreOffice and WPS show as text, never as a formula.
That includes phone numbers in E.164 form (``'+8613800000015``); strip the
``'`` before feeding the column to another program.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Callable

import redis
from flask import Flask, current_app
from sqlalchemy import (BigInteger, Connection, Integer, and_, case, cast, false, func, or_,
                        select)

from channels.registry import PLACE_CHANNELS
from gateway.delivery import lifecycle, queues, reach
from gateway.store import hotline, ledger
from gateway.store.db import as_utc, utcnow
from gateway.store.ledger.retention import retained
from gateway.store.roster import beneath
from gateway.store.schema import announcements, deliveries, reached, residents

UNREACHED_COLUMNS = ("id", "name", "phone", "phone_invalid", "area_code", "section", "tried")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: How many moments the history of counts is sampled at, release to last change.
HISTORY_POINTS = 40
#: Figures that count a notice's rows are counted for each answer up to this many deliveries,
#: and above it in the background (``counted_in_background``): ~50 ms of counting at most.
COUNTED_INLINE_UP_TO = 100_000
#: A figure counted in the background is counted again when older than this …
REFRESH_SECONDS = 30
#: … or than this many times what counting it took (so one figure's thread counts at most
#: 1/50 of the time).
REFRESH_DUTY = 50
#: A thread counting longer than this is taken for dead: another may count.
COUNTING_LOCK_SECONDS = 600
#: How often a caller waiting for another's first count looks for its value.
FIRST_COUNT_WAIT_SECONDS = 0.05
#: How long Redis keeps a counted figure nobody asks for.
COUNTED_KEPT_SECONDS = 86_400
#: Messages not yet handed to a provider: the status's ``pending``.
PENDING = ("planned", "queued", "sending")


def status(conn: Connection, announcement) -> dict:
    counts = ledger.counts(conn, announcement.id)
    personal = {c: n for c, n in counts.items() if c not in PLACE_CHANNELS}
    pending = sum(n[s] for n in counts.values() for s in PENDING)
    corrections = [row.id for row in conn.execute(  # not one still awaiting approval
        select(announcements.c.id).where(announcements.c.supersedes_id == announcement.id,
                                         announcements.c.state.in_(lifecycle.RELEASED_STATES))
        .order_by(announcements.c.id))]
    sections = counted_in_background(
        conn, announcement.id, "sections", total_deliveries(counts),
        lambda counting: reach.section_counts(counting, announcement, planned=True))
    paused = paused_channels(json.loads(announcement.channels))
    return {
        "id": announcement.id,
        "identifier": announcement.identifier,
        "state": announcement.state,
        "status": announcement.status,
        "msg_type": announcement.msg_type,
        "severity": announcement.severity,
        "languages": lifecycle.languages(conn, announcement),
        "headline": announcement.headline,
        "areas": json.loads(announcement.areas),
        "channels": json.loads(announcement.channels),
        "deliveries": counts,
        "pending": pending,
        "personal_deliveries": sum(sum(n.values()) for n in personal.values()),
        "reached_residents": ledger.reached_count(conn, announcement.id),
        "confirmed_residents": ledger.confirmed_count(conn, announcement.id),
        "not_reached_residents": sections[reach.NOT_REACHED],
        "unconfirmed_residents": sections[reach.UNCONFIRMED],
        "confirmation_required": announcement.severity in reach.CONFIRM_SEVERITIES,
        # Sent again after a worker died not knowing whether the first send went out.
        "possibly_sent_twice": ledger.resent_count(conn, announcement.id),
        # Calls to the notice hotline that heard it (gateway/delivery/hotline.py).
        "hotline_listeners": hotline.listeners(conn, announcement.id),
        "superseded_by": corrections,
        "paused_channels": paused or {},
        # Redis, the jobs' queue, not answering: nothing goes out until it is back.
        "queue_reachable": paused is not None,
        "supersedes": announcement.supersedes_id,
    }


def history(conn: Connection, announcement, points: int = HISTORY_POINTS) -> dict:
    """The counts over time, from the ledger's own timestamps, so that a page opened late
    draws the real curve: residents reached and confirmed (``reached.reached_at`` and
    ``confirmed_at``) and messages delivered per channel (a delivered or confirmed row's
    ``updated_at``: when its last acknowledgement came), each counted up to every one of
    ``points`` moments from the release to now (while messages are pending) or the last
    change. ``seconds`` are since the release; empty before it.

    Each series is read once, grouped by whole second (a row counts from the start of its
    second), and summed up to each moment here: one pass over the notice's rows, not one
    per moment. A large notice's history is the one ``counted_in_background`` keeps.
    """
    start = as_utc(announcement.sent)
    if start is None:
        return {"start": None, "seconds": [], "reached": [], "confirmed": [], "delivered": {}}
    ours_reached = reached.c.announcement_id == announcement.id
    reached_at = _per_second(conn, reached.c.reached_at, ours_reached)
    confirmed_at = _per_second(conn, reached.c.confirmed_at, ours_reached)
    delivered_at: dict[str, dict[int, int]] = {}
    for row in conn.execute(select(deliveries.c.channel, _second(conn, deliveries.c.updated_at),
                                   func.count())
                            .where(deliveries.c.announcement_id == announcement.id,
                                   deliveries.c.status.in_(ledger.REACHED),
                                   deliveries.c.updated_at.is_not(None))
                            .group_by(deliveries.c.channel,
                                      _second(conn, deliveries.c.updated_at))):
        delivered_at.setdefault(row[0], {})[int(row[1])] = row[2]
    series = [reached_at, confirmed_at, *delivered_at.values()]
    last = max((second for counts in series for second in counts), default=None)
    pending = sum(by_status[s] for by_status in ledger.counts(conn, announcement.id).values()
                  for s in PENDING)
    end = max([start] + ([datetime.fromtimestamp(last, timezone.utc)] if last is not None else [])
              + ([utcnow()] if pending else []))
    span = (end - start).total_seconds()
    moments = [start.timestamp() + span * index / (points - 1) for index in range(points)]
    return {"start": start.isoformat(),
            "seconds": [round(span * index / (points - 1), 1) for index in range(points)],
            "reached": _up_to(reached_at, moments),
            "confirmed": _up_to(confirmed_at, moments),
            "delivered": {channel: _up_to(counts, moments)
                          for channel, counts in delivered_at.items()}}


def _second(conn: Connection, column):
    """A timestamp column's whole second since 1970, as SQL."""
    if conn.dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(func.extract("epoch", column)), BigInteger)


def _per_second(conn: Connection, column, where) -> dict[int, int]:
    """How many of the rows ``where`` selects have ``column`` in each whole second."""
    second = _second(conn, column)
    return {int(at): n for at, n in conn.execute(
        select(second, func.count()).where(where, column.is_not(None)).group_by(second))}


def _up_to(per_second: dict[int, int], moments: list[float]) -> list[int]:
    """The running total of ``per_second`` at each of the (ascending) ``moments``."""
    totals, total, seconds = [], 0, sorted(per_second)
    position = 0
    for moment in moments:
        while position < len(seconds) and seconds[position] <= moment:
            total += per_second[seconds[position]]
            position += 1
        totals.append(total)
    return totals


def total_deliveries(counts: dict[str, dict[str, int]]) -> int:
    """All of a notice's deliveries, from its running counts (``ledger.counts``)."""
    return sum(sum(by_status.values()) for by_status in counts.values())


def latest_history(conn: Connection, announcement, deliveries: int) -> dict:
    """``history`` for the progress page, which polls it: see ``counted_in_background``."""
    return counted_in_background(conn, announcement.id, "history", deliveries,
                                 lambda counting: history(counting, announcement))


def counted_in_background(conn: Connection, announcement_id: int, name: str, deliveries: int,
                          count: Callable[[Connection], object]):
    """A figure that counts a notice's rows (``count``), for an answer that is polled.

    Up to ``COUNTED_INLINE_UP_TO`` deliveries it is counted for each answer. Above, the
    count grows with the notice (a second and more at a million deliveries), too slow for
    every poll: the answer gives the value last counted, kept in Redis, and when it is older
    than ``REFRESH_SECONDS`` (or ``REFRESH_DUTY`` times what counting took) a thread of
    this process counts again (a Redis lock: one at a time per figure; one background count
    at a time per process), so no answer waits for it. Only the first answer after Redis
    lost the value counts while the caller waits (and whoever asks meanwhile waits for that
    count). While Redis does not answer, the process keeps the figures itself
    (``_kept_in_process``): the answers go on.
    """
    if deliveries <= COUNTED_INLINE_UP_TO:
        return count(conn)
    key = f"tongbao:counted:{announcement_id}:{name}"
    try:
        kept = _kept_in_redis(key, count, conn)
    except redis.RedisError:
        return _kept_in_process(key, count, conn)
    _kept_here().pop(key, None)
    return kept


def _kept_in_redis(key: str, count: Callable[[Connection], object], conn: Connection):
    kept = json.loads(queues.connection().get(key) or _first_count(key, count, conn))
    if _stale(kept) and queues.connection().set(f"{key}:counting", 1, nx=True,
                                                 ex=COUNTING_LOCK_SECONDS):
        threading.Thread(target=_recount, args=(current_app._get_current_object(), key, count),
                         name=f"recount {key}", daemon=True).start()
    return kept["value"]


#: While Redis does not answer (restarting), one count at a time in this process.
_COUNTING_HERE = threading.Lock()


def _kept_in_process(key: str, count: Callable[[Connection], object], conn: Connection):
    """The figure as Redis would keep it, kept by this process: counted here at most once
    per refresh, while the caller waits."""
    with _COUNTING_HERE:
        kept = _kept_here().get(key)
        if kept is None or _stale(kept):
            kept = _kept_here()[key] = json.loads(_measured(count, conn))
        return kept["value"]


def _kept_here() -> dict[str, dict]:
    return current_app.extensions.setdefault("figures_kept_while_redis_is_away", {})


def _stale(kept: dict) -> bool:
    return time.time() - kept["at"] > max(REFRESH_SECONDS, REFRESH_DUTY * kept["took"])


def _first_count(key: str, count: Callable[[Connection], object], conn: Connection) -> bytes:
    """Nothing kept yet: one caller counts while it waits; the others asking meanwhile wait
    for its value rather than counting the same rows at the same time."""
    store = queues.connection()
    lock = f"{key}:counting"
    while not store.set(lock, 1, nx=True, ex=COUNTING_LOCK_SECONDS):  # it expires if they died
        time.sleep(FIRST_COUNT_WAIT_SECONDS)
        kept = store.get(key)
        if kept is not None:
            return kept
    try:
        # Whoever held the lock before may have kept the value since this caller last looked.
        return store.get(key) or _count_and_keep(key, count, conn)
    finally:
        store.delete(lock)


def _count_and_keep(key: str, count: Callable[[Connection], object], conn: Connection) -> str:
    kept = _measured(count, conn)
    queues.connection().set(key, kept, ex=COUNTED_KEPT_SECONDS)
    return kept


def _measured(count: Callable[[Connection], object], conn: Connection) -> str:
    """The value counted, when, and how long counting it took (JSON)."""
    began = time.time()
    value = count(conn)
    return json.dumps({"value": value, "at": time.time(), "took": time.time() - began})


#: One background count at a time in a process: ten notices' figures falling due together
#: would otherwise hold ten pooled connections and the database's cores away from the answers.
_RECOUNTING = threading.Lock()
#: How much lower a background count's CPU priority is than the answers' (a nice increment).
RECOUNT_NICENESS = 10


def _recount(app: Flask, key: str, count: Callable[[Connection], object]) -> None:
    _yield_cpu_to_answers()
    with app.app_context():
        try:
            with _RECOUNTING, app.extensions["engine"].connect() as conn:
                _count_and_keep(key, count, conn)
        except Exception:  # a thread's failure is logged; the kept value stays until next time
            app.logger.exception("recounting %s failed", key)
        finally:
            queues.connection().delete(f"{key}:counting")


def _yield_cpu_to_answers() -> None:
    """Lower this thread's CPU priority: a history count takes ~1 s of CPU at a million
    deliveries (SQLite counts in this process), and answers running beside it waited for the
    cores. Linux gives each thread its own niceness; elsewhere this does nothing."""
    if sys.platform.startswith("linux"):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread,
                       os.getpriority(os.PRIO_PROCESS, thread) + RECOUNT_NICENESS)


def paused_channels(channels: list[str]) -> dict[str, dict] | None:
    """Channels whose provider account is blocked for now, with why and for how long;
    ``None`` when Redis, where the pauses are kept, does not answer."""
    try:
        pauses = queues.channel_pauses(channels)
    except redis.RedisError:
        return None
    return {channel: {"seconds_left": seconds, "reason": reason}
            for channel, (seconds, reason) in pauses.items()}


class DetailsDeleted(lifecycle.ActionRefused):
    """Who was not reached is no longer known: retention deleted the notice's delivery details."""

    def __init__(self, announcement_id: int):
        super().__init__(f"announcement {announcement_id} finished more than RETENTION_DAYS ago "
                         "and its delivery details were deleted: who was not reached is no longer "
                         "known; its counts remain in its status and disclosure report", 410)


def unreached(conn: Connection, announcement, *, area: str | None = None,
              section: str | None = None, limit: int = 100,
              offset: int = 0) -> tuple[list[dict], int]:
    """Residents of the audience still to be reached: the two sections of ``reach``.

    ``not_reached``: no personal channel has reached them (yet), including
    residents the policy found no channel for: exactly the people a grid worker
    must visit. ``unconfirmed``: reached, but the notice is severe or extreme and
    they are vulnerable, so it is not done until they confirm. Each row names
    its ``section``; ``section`` keeps only one; not reached come first.
    A notice whose details retention deleted has no list: ``DetailsDeleted``.
    """
    if retained(conn, announcement.id) is not None:
        raise DetailsDeleted(announcement.id)
    chosen = (section,) if section else reach.SECTIONS
    clauses = {name: reach.section_clause(announcement, name) for name in chosen}
    condition = or_(*(false() if clause is False else clause for clause in clauses.values()))
    if area:
        condition = and_(condition, beneath(residents.c.area_code, [area]))
    total = conn.execute(select(func.count()).select_from(residents).where(condition)).scalar_one()
    not_reached = reach.section_clause(announcement, reach.NOT_REACHED)
    in_section = case((not_reached, reach.NOT_REACHED), else_=reach.UNCONFIRMED).label("section")
    people = conn.execute(select(residents.c.id, residents.c.name, residents.c.phone,
                                 residents.c.phone_invalid, residents.c.area_code,
                                 in_section).where(condition)
                          .order_by(in_section, residents.c.area_code, residents.c.id)
                          .limit(limit).offset(offset)).all()
    tried_by = tried_channels(conn, announcement.id, [person.id for person in people])
    # phone_invalid: a provider said the number does not exist; a grid worker should correct it.
    return [{"id": p.id, "name": p.name, "phone": p.phone,
             "phone_invalid": p.phone_invalid is not None, "area_code": p.area_code,
             "section": p.section, "tried": tried_by.get(p.id, [])} for p in people], total


def tried_channels(conn: Connection, announcement_id: int, resident_ids: list[int]) -> dict[int, list]:
    result: dict[int, list] = {}
    if not resident_ids:
        return result
    for row in conn.execute(select(deliveries.c.recipient_id, deliveries.c.channel,
                                   deliveries.c.status, deliveries.c.attempts,
                                   deliveries.c.last_error, deliveries.c.updated_at)
                            .where(deliveries.c.announcement_id == announcement_id,
                                   deliveries.c.channel.notin_(PLACE_CHANNELS),
                                   deliveries.c.recipient_id.in_(resident_ids))
                            .order_by(deliveries.c.id)):
        result.setdefault(row.recipient_id, []).append({
            "channel": row.channel, "status": row.status, "attempts": row.attempts,
            "error": row.last_error,
            "at": row.updated_at.isoformat() if row.updated_at else None})
    return result


def _tried_in_english(tried: dict) -> str:
    return (f"{tried['channel']} {tried['status']} x{tried['attempts']} {tried['at'] or ''}".rstrip()
            + (f" ({tried['error']})" if tried["error"] else ""))


def inert_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: a leading ``'`` before a formula's first character."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def unreached_csv(people: list[dict], header: list[str],
                  area_names: dict[str, str] | None = None,
                  section_names: dict[str, str] | None = None,
                  describe_try: Callable[[dict], str] | None = None) -> str:
    """The unreached list as CSV text, with a BOM (so Excel on Chinese Windows reads UTF-8).

    Columns: name, phone, area code, the area's name (only with ``area_names``),
    the section (``not_reached`` or ``unconfirmed``, or its name in
    ``section_names``), and what was tried (each channel as ``describe_try`` words it, by
    default ``sms failed x3 <ISO time> (error)``); ``header`` names them (translated in
    the console).
    """
    describe_try = describe_try or _tried_in_english
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([inert_cell(title) for title in header])
    for person in people:
        tried = "; ".join(describe_try(t) for t in person["tried"])
        row = [person["name"], person["phone"], person["area_code"]]
        if area_names is not None:
            row.append(area_names.get(person["area_code"], ""))
        row.append((section_names or {}).get(person["section"], person["section"]))
        writer.writerow([inert_cell(cell) for cell in row + [tried]])
    return "\ufeff" + buffer.getvalue()
