"""Planning: from an approved announcement to ledger rows and queued batch jobs.

Residents are streamed from the database in chunks (keyset paging on their
id), so the roster is never held in memory. Id order rather than area order
makes every chunk's deliveries append to the ledger's unique index instead of
landing all over it, which was most of the time of planning a million. Transactions
grow from one chunk to ``COMMIT_RESIDENTS`` residents; each transaction's deliveries are
written in one statement (``ledger.write``: ``COPY`` on PostgreSQL) fed as they are made,
and committed, with the cursor, before its jobs are queued (on a thread of their own,
``Queuer``); a crash between the two leaves rows the reconciler will find.

A resident's deliveries are in their own language when the announcement has a
text in it, else in the announcement's language; loudspeakers play the latter.
"""
from __future__ import annotations

import json
from collections import namedtuple
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from itertools import islice
from types import SimpleNamespace
from typing import Iterator

from flask import current_app
from sqlalchemy import Connection, Engine, and_, case, func, select, update

from audiences.policy import ADDRESS_FIELD, PERSON_FIELDS, Policy, channels_for, person_key
from gateway.delivery import lifecycle, providers, public_channels, queues, reach
from gateway.store import audit, grids, ledger
from gateway.store.db import utcnow
from gateway.store.roster import beneath, usable_phone
from gateway.store.schema import announcements, delivery_counts, devices, group_robots, residents

CHUNK = 5000
# The most residents one transaction plans. A transaction starts at one chunk, so the first
# batches are queued within a moment, and doubles up to this: fewer commits, and a crash
# redoes at most this many residents' rows (the cursor is committed with them).
COMMIT_RESIDENTS = 50_000
# A phone marked invalid is no address: no channel is planned to it.
RESIDENT_COLUMNS = (residents.c.id, residents.c.area_code, residents.c.language,
                    residents.c.grid,
                    *(usable_phone() if name == "phone" else residents.c[name]
                      for name in PERSON_FIELDS))
# A resident as the plan reads them. A named tuple, not SQLAlchemy's row: reading a field of
# a row cost 0.7 µs, and the plan reads a dozen of each of a million residents.
Resident = namedtuple("Resident", [column.name for column in RESIDENT_COLUMNS])


@dataclass
class Batches:
    """Hands out batch numbers per channel and says which batches are full."""

    size: int
    filled: dict[str, int] = field(default_factory=dict)

    def next(self, channel: str) -> int:
        count = self.filled.get(channel, 0)
        self.filled[channel] = count + 1
        return count // self.size

    def complete(self, channel: str) -> int:
        """How many of this channel's batches are full (numbered 0 .. n-1)."""
        return self.filled.get(channel, 0) // self.size

    def total(self, channel: str) -> int:
        return -(-self.filled.get(channel, 0) // self.size)


def stream_residents(conn: Connection, codes: list[str], *, drill: bool,
                     after: int = 0) -> Iterator[list]:
    """Residents beneath the codes in id order, ``CHUNK`` at a time."""
    condition = and_(beneath(residents.c.area_code, codes), residents.c.retired_at.is_(None))
    if drill:
        condition = and_(condition, residents.c.test_audience.is_(True))
    if conn.dialect.name == "postgresql":
        yield from _stream_in_one_query(conn, condition, after)
        return
    while True:
        result = conn.execute(select(*RESIDENT_COLUMNS).where(condition, residents.c.id > after)
                              .order_by(residents.c.id).limit(CHUNK))
        # The driver's own tuples: SQLAlchemy's rows cost a tenth of a million residents'
        # plan (SQLite's booleans then stay 0 and 1, which everything here reads as truth).
        rows = list(map(Resident._make, result.cursor.fetchall()))
        result.close()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _stream_in_one_query(conn: Connection, condition, after: int) -> Iterator[list]:
    """PostgreSQL: one query read through a server-side cursor. Paged by LIMIT, a roster not
    yet analysed after its import had the server scan the area index and sort every
    remaining resident for each chunk: 0.5 s a chunk, 250 s for a million. One query sorts
    them once, if at all. (SQLite pages: a read open through the whole plan would keep its
    write-ahead log from being reset.) Read by the driver's own cursor: SQLAlchemy's
    partitions cost 2 µs a resident over it."""
    query = (select(*RESIDENT_COLUMNS).where(condition, residents.c.id > after)
             .order_by(residents.c.id).compile(dialect=conn.dialect))
    # The transaction it runs in is the driver's own, ended when the reader goes back to the
    # pool (SQLAlchemy rolls back every connection it is given back).
    with conn.connection.driver_connection.cursor(name="plan_residents") as cursor:
        cursor.execute(str(query), query.params)
        while rows := cursor.fetchmany(CHUNK):
            yield list(map(Resident._make, rows))


def plan(engine: Engine, announcement_id: int, policy: Policy) -> dict[str, int]:
    """Write every delivery of an approved announcement and queue its batches.

    The audit log's ``send`` record names the deliveries per channel and how many
    residents were planned fewer than two independent paths (``reach.paths``).
    """
    with engine.connect() as conn:
        announcement = conn.execute(select(announcements)
                                    .where(announcements.c.id == announcement_id)).first()
    if announcement is None or announcement.state != "approved":
        return {}
    if announcement.msg_type == "cancel":
        totals = _plan_correction(engine, announcement)
    else:
        totals = _plan_areas(engine, announcement, policy)
    with engine.begin() as conn:
        conn.execute(update(announcements)
                     .where(announcements.c.id == announcement_id,
                            announcements.c.state == "approved")
                     .values(state="sending" if any(totals.values()) else "done",
                             finished_at=None if any(totals.values()) else utcnow()))
        cursor = json.loads(conn.execute(select(announcements.c.plan_cursor).where(
            announcements.c.id == announcement_id)).scalar() or "{}")
        ledger.set_audience(conn, announcement_id, cursor["audience"] if "audience" in cursor
                            else _correction_audience(conn, announcement))
        audit.record(conn, "system", "send", f"announcement:{announcement_id}",
                     {"deliveries": totals, "thin_residents": cursor.get("thin", 0)})
    return totals


def _plan_areas(engine: Engine, announcement, policy: Policy) -> dict[str, int]:
    config = current_app.config
    codes = json.loads(announcement.areas)
    drill = announcement.status in ("test", "exercise")
    cursor = json.loads(announcement.plan_cursor or '{"after": 0, "speakers": false}')
    cursor.setdefault("thin", 0)  # residents with fewer than two independent paths
    cursor.setdefault("audience", 0)  # residents planned for (the status's not reached)
    with engine.begin() as conn:
        allowed = planned_channels(announcement, config) | public_channels.channels(
            conn, announcement, config, drill=drill)
        ledger.ensure_counts(conn, announcement.id, allowed)
        batches = Batches(config["BATCH_SIZE"], _planned_so_far(conn, announcement.id))
        templates = Templates(announcement, policy, allowed,
                              written_in=set(lifecycle.languages(conn, announcement)),
                              speakers=speaker_villages(conn, codes, drill)
                              if "loudspeaker" in allowed else {},
                              worked=grids.worked_grids(conn))
    counted = dict(batches.filled)
    with engine.connect() as reader, engine.connect() as writer, \
            Queuer(announcement.id, allowed) as queuer:
        # Begun explicitly: on PostgreSQL the rows go by COPY on the driver's connection,
        # which SQLAlchemy does not see, so it would not begin (nor commit) by itself.
        writer.begin()
        chunks = stream_residents(reader, codes, drill=drill, after=cursor["after"])
        size = CHUNK
        while True:
            planned = cursor["audience"]
            ledger.write(writer, announcement.id,
                         _rows(chunks, size, templates, batches, cursor))
            if cursor["audience"] - planned < size:  # the roster's end: committed below
                break
            _write_and_queue(writer, announcement.id, cursor, batches, counted, queuer)
            writer.begin()
            size = min(2 * size, COMMIT_RESIDENTS)
        if not cursor["speakers"]:
            cursor["speakers"] = True
            ledger.write(writer, announcement.id,
                         _place_rows(reader, announcement, allowed, drill, batches))
        _write_and_queue(writer, announcement.id, cursor, batches, counted, queuer)
        for channel in allowed:
            queuer.up_to(channel, batches.total(channel))
    return dict(batches.filled)


class Queuer:
    """Queues a plan's batches on a thread of its own, in order, once they are committed:
    queueing 13,000 rq jobs is seconds of CPU, which the thread spends while the planner
    waits for the database (its reads, its ``COPY``, its commits). A failure to queue (Redis
    gone) stops the plan at its next commit; leaving, it waits for what was handed over."""

    def __init__(self, announcement_id: int, channels) -> None:
        self.announcement_id = announcement_id
        self.queued = {channel: 0 for channel in channels}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plan-queue")
        self._handed: list[Future] = []

    def up_to(self, channel: str, end: int) -> None:
        """Queue the channel's batches numbered below ``end`` that are not queued yet."""
        for done in [future for future in self._handed if future.done()]:
            self._handed.remove(done)
            done.result()  # raises what queueing raised
        if end > self.queued[channel]:
            # The planner's context (its app, its log fields) goes with the work.
            self._handed.append(self._thread.submit(
                copy_context().run, queues.enqueue_batches, self.announcement_id, channel,
                range(self.queued[channel], end)))
            self.queued[channel] = end

    def __enter__(self) -> "Queuer":
        return self

    def __exit__(self, *failure) -> None:
        self._thread.shutdown(wait=True)
        if failure[0] is None:
            for future in self._handed:
                future.result()


class Templates:
    """What a resident's deliveries share with every resident alike in what the plan looks at
    (``person_key``, their language, whether their village has a loudspeaker that plays and
    their grid a worker): the channels with the column holding each one's address, the
    language, and whether they are thin (``reach.paths``). Worked out once per kind of
    resident instead of once per resident: most of a million residents are of a few
    thousand kinds."""

    def __init__(self, announcement, policy: Policy, allowed: set[str], *,
                 written_in: set[str], speakers: dict[str, int], worked) -> None:
        self.announcement, self.policy, self.allowed = announcement, policy, allowed
        self.written_in, self.worked = written_in, worked
        self.speaking = {code for code, online in speakers.items() if online}
        self.year = (announcement.sent or utcnow()).year
        self.known: dict[tuple, tuple] = {}

    def of(self, person) -> tuple[tuple[tuple[str, str], ...], str, bool]:
        """``((channel, address column), ...), language, thin`` for this resident."""
        key = (person_key(person), person.language, person.area_code in self.speaking,
               reach.visit_planned(person.grid, self.worked))
        template = self.known.get(key)
        if template is None:
            template = self.known[key] = self._work_out(person, key)
        return template

    def _work_out(self, person, key: tuple) -> tuple:
        chosen = channels_for(person, severity=self.announcement.severity, policy=self.policy,
                              available=self.allowed, year=self.year)
        thin = len(reach.paths(person, chosen, key[2], key[3])) < reach.ENOUGH_PATHS
        return (tuple((channel, ADDRESS_FIELD[channel]) for channel in chosen),
                lifecycle.language_for(person, self.written_in, self.announcement), thin)


def _rows(chunks: Iterator[list], residents: int, templates: Templates, batches: Batches,
          cursor: dict) -> Iterator[tuple]:
    """The deliveries of the next ``residents`` residents (whole chunks) as ``ledger.ROW_FIELDS``
    tuples, numbered into batches; moves the cursor past each chunk and counts its residents
    into the cursor's audience and thin residents.

    A generator, so one ``COPY`` takes a whole transaction's rows as they are made: the server
    inserts them (and maintains the ledger's indexes) while the next ones are worked out and
    read, instead of after each chunk with the planner waiting for it."""
    filled, size = batches.filled, batches.size
    for chunk in islice(chunks, residents // CHUNK):
        thin = 0
        for person in chunk:
            channels, language, is_thin = templates.of(person)
            thin += is_thin
            for channel, field_name in channels:
                count = filled.get(channel, 0)  # Batches.next, inlined: a call per delivery shows
                filled[channel] = count + 1
                yield channel, person.id, getattr(person, field_name), language, count // size
        cursor["after"] = chunk[-1].id
        cursor["audience"] += len(chunk)
        cursor["thin"] += thin


def _planned_so_far(conn: Connection, announcement_id: int) -> dict[str, int]:
    """Deliveries per channel already written by an earlier, interrupted run."""
    return {row.channel: int(row.total) for row in conn.execute(
        select(delivery_counts.c.channel, func.sum(delivery_counts.c.count).label("total"))
        .where(delivery_counts.c.announcement_id == announcement_id)
        .group_by(delivery_counts.c.channel)) if row.total}


def _write_and_queue(writer: Connection, announcement_id: int, cursor: dict, batches: Batches,
                     counted: dict[str, int], queuer: Queuer) -> None:
    """Count the rows written since the last commit, commit them with the cursor, then queue
    the batches they filled. The counts are bumped only here, just before the commit, so the
    workers' status moves wait for the planner's row locks a moment, not a whole transaction."""
    for channel, filled in batches.filled.items():
        if filled > counted.get(channel, 0):
            ledger.bump(writer, announcement_id, channel,
                        {"queued": filled - counted.get(channel, 0)})
            counted[channel] = filled
    writer.execute(update(announcements).where(announcements.c.id == announcement_id)
                   .values(plan_cursor=json.dumps(cursor)))
    writer.commit()
    for channel in queuer.queued:
        queuer.up_to(channel, batches.complete(channel))


def planned_channels(announcement, config) -> set[str]:
    """The announcement's channels that can be sent over; group robots come with WeChat."""
    allowed = set(json.loads(announcement.channels))
    if "wechat" in allowed:
        allowed.add("wecom_robot")
    return allowed & providers.available_channels(config)


def speaker_villages(conn: Connection, codes: list[str], drill: bool) -> dict[str, int]:
    """Devices per village that would play (offline devices do not count as reaching it)."""
    condition = beneath(devices.c.area_code, codes)
    if drill:
        condition = and_(condition, devices.c.test_device.is_(True))
    online = func.sum(case((devices.c.online.is_(False), 0), else_=1))
    return {row.area_code: row.online for row in conn.execute(
        select(devices.c.area_code, online.label("online")).where(condition)
        .group_by(devices.c.area_code))}


def _place_rows(conn: Connection, announcement, allowed: set[str], drill: bool,
                batches: Batches) -> list[tuple]:
    """One delivery (``ledger.ROW_FIELDS``) per loudspeaker, per village group robot, and per public place
    (``public_channels.places``: broadcasters, webhooks, Weibo) in the targeted areas.

    Drills go only to test devices and test destinations; group robots post to real groups
    and Weibo is public, so never drills."""
    codes = json.loads(announcement.areas)
    places = []
    if "loudspeaker" in allowed:
        query = (select(devices.c.id, devices.c.device_id.label("address"))
                 .where(beneath(devices.c.area_code, codes)).order_by(devices.c.id))
        if drill:
            query = query.where(devices.c.test_device.is_(True))
        places += [("loudspeaker", row) for row in conn.execute(query)]
    if "wecom_robot" in allowed and not drill:
        query = (select(group_robots.c.id, group_robots.c.robot_key.label("address"))
                 .where(beneath(group_robots.c.area_code, codes)).order_by(group_robots.c.id))
        places += [("wecom_robot", row) for row in conn.execute(query)]
    places += [(channel, SimpleNamespace(id=recipient, address=address)) for channel, recipient,
               address in public_channels.places(conn, announcement, current_app.config,
                                                 drill=drill) if channel in allowed]
    return [(channel, row.id, row.address, announcement.language, batches.next(channel))
            for channel, row in places]


def _correction_audience(conn: Connection, correction) -> int:
    """A correction is for the residents the original reached (``reach.correction_recipients``)."""
    return conn.execute(select(func.count()).select_from(
        reach.correction_recipients(correction).subquery())).scalar_one()


def _plan_correction(engine: Engine, correction) -> dict[str, int]:
    """A correction goes to everyone the original reached, over the channels that reached them."""
    with engine.begin() as conn:
        groups = ledger.add_correction(conn, correction.id, correction.supersedes_id)
    totals: dict[str, int] = {}
    for channel, _batch, count in groups:
        totals[channel] = totals.get(channel, 0) + count
    for channel in totals:
        queues.enqueue_batches(correction.id, channel,
                               sorted(b for c, b, _ in groups if c == channel))
    return totals
