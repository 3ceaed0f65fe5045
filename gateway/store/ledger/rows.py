"""New delivery rows: a plan's, an escalation's, a correction's; and the batches still pending."""
from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import datetime
from itertools import islice
from typing import Iterable, Mapping, Sequence

from sqlalchemy import Connection, and_, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from channels.registry import IN_PERSON
from gateway.store.db import utcnow
from gateway.store.ledger.statuses import HANDED_OVER, PENDING
from gateway.store.ledger.totals import REACHED_KEY, bump, ensure_counts
from gateway.store.schema import deliveries, delivery_counts


def add(conn: Connection, announcement_id: int, rows: Sequence[Mapping], *,
        status: str = "queued") -> None:
    """Write new deliveries and count them; each row has channel, recipient_id,
    address, language and batch."""
    write(conn, announcement_id, [tuple(row[name] for name in ROW_FIELDS) for row in rows],
          status=status)
    for channel, count in Counter(row["channel"] for row in rows).items():
        bump(conn, announcement_id, channel, {status: count})


#: The fields of a row for ``write``, in order; the rest is the same for every row.
ROW_FIELDS = ("channel", "recipient_id", "address", "language", "batch")
_COLUMNS = ("announcement_id", *ROW_FIELDS, "status", "attempts", "updated_at")


def write(conn: Connection, announcement_id: int, rows: Iterable[tuple], *,
          status: str = "queued") -> None:
    """Write new deliveries, ``ROW_FIELDS`` tuples, without counting them: the caller
    bumps the running counts (``bump``) in the same transaction. ``rows`` may be a
    generator: they are sent as it makes them.

    The rows go to the driver as plain tuples (SQLAlchemy's per-row parameter handling
    was a third of the time of planning a million deliveries): on PostgreSQL by ``COPY``,
    several times faster than any INSERT; on SQLite by ``executemany`` with the values
    every row shares written into the statement, so only five are bound per row. The
    unique key rejects a duplicate either way (a ``COPY`` then fails as a whole).
    """
    stamp = utcnow()
    if conn.dialect.name == "postgresql":
        _copy(conn, announcement_id, rows, status, stamp)
        return
    shared = (announcement_id, status, 0, _sqlite_text(stamp))
    # The driver's own executemany: it takes an iterator (SQLAlchemy's wants a sequence).
    conn.connection.driver_connection.executemany(
        f"INSERT INTO deliveries ({', '.join(_COLUMNS)}) VALUES ({_literal(announcement_id)}, "
        f"{', '.join('?' * len(ROW_FIELDS))}, {', '.join(_literal(value) for value in shared[1:])})",
        rows)


#: Rows per piece of ``COPY`` text: built with one join, checked at once.
COPY_BLOCK = 5000
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy(conn: Connection, announcement_id: int, rows: Iterable[tuple], status: str,
          stamp: datetime) -> None:
    """``COPY`` in its text format, made here a block at a time: psycopg's ``write_row``
    adapts each value on its own, 2.4 µs a row, the largest cost of planning a million."""
    lead, tail = f"{int(announcement_id)}\t", f"\t{copy_field(status)}\t0\t{stamp.isoformat()}\n"
    rows = iter(rows)
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(
            f"COPY deliveries ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
        while block := list(islice(rows, COPY_BLOCK)):
            copy.write(_copy_text(block, lead, tail))


def _copy_text(block: list[tuple], lead: str, tail: str) -> str:
    """The block's lines, fast when no value holds a character ``COPY`` must escape (a tab,
    a line break, a backslash) or is null (written as "None", so a block with that word in it
    is made the slow way too); such a block is made again field by field."""
    text = "".join([f"{lead}{channel}\t{recipient}\t{address}\t{language}\t{batch}{tail}"
                    for channel, recipient, address, language, batch in block])
    if (text.count("\t") == 8 * len(block) and text.count("\n") == len(block)
            and "\\" not in text and "\r" not in text and "None" not in text):
        return text
    return "".join(lead + "\t".join(map(copy_field, row)) + tail for row in block)


def copy_field(value) -> str:
    """A value as ``COPY``'s text format writes it (null as ``\\N``)."""
    return "\\N" if value is None else str(value).translate(_COPY_ESCAPES)


def _sqlite_text(moment: datetime) -> str:
    """The text sqlite3 stores for a datetime (its registered adapter), made once, not per row."""
    return sqlite3.adapters[(datetime, sqlite3.PrepareProtocol)](moment)


def _literal(value: int | str) -> str:
    """An SQL literal of a value the ledger made itself (a number, a status, a time)."""
    if isinstance(value, int):
        return str(int(value))
    return "'" + value.replace("'", "''") + "'"


def add_missing(conn: Connection, announcement_id: int, rows: Sequence[Mapping]) -> Counter:
    """Write queued deliveries, each unless its (channel, recipient) is already planned.

    The unique key decides, so two workers escalating the same resident at the
    same moment still write one row. Returns the rows written per channel.
    """
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    written: Counter = Counter()
    for row in rows:
        statement = dialect.insert(deliveries).values(
            announcement_id=announcement_id, status="queued", attempts=0, updated_at=utcnow(),
            **{key: row[key] for key in ("channel", "recipient_id", "address", "language", "batch")})
        if conn.execute(statement.on_conflict_do_nothing().returning(deliveries.c.id)).first():
            written[row["channel"]] += 1
    if written:
        ensure_counts(conn, announcement_id, written)
    for channel, count in written.items():
        bump(conn, announcement_id, channel, {"queued": count})
    return written


def add_correction(conn: Connection, correction_id: int, original_id: int) -> list[tuple]:
    """Queue the correction to everyone the original was handed over to, over the same
    channels, addresses, languages and batches; returns (channel, batch, count) groups.

    Not in person: no job sends those; a resident a grid worker told is left for a visit
    (``reach.correction_recipients``, docs/grid-workers.md)."""
    channels = [row.channel for row in conn.execute(
        select(delivery_counts.c.channel).distinct()
        .where(delivery_counts.c.announcement_id == original_id,
               delivery_counts.c.channel.notin_((REACHED_KEY[0], IN_PERSON))))]
    ensure_counts(conn, correction_id, channels)
    copied = ("channel", "recipient_id", "address", "language", "batch")
    # Bound values with the columns' types, not CASTs: SQLite's CAST(? AS DATETIME)
    # turned the time into the number 2026.
    source = (select(literal(correction_id, deliveries.c.announcement_id.type),
                     *(deliveries.c[name] for name in copied),
                     literal("queued", deliveries.c.status.type),
                     literal(0, deliveries.c.attempts.type),
                     literal(utcnow(), deliveries.c.updated_at.type))
              .where(deliveries.c.announcement_id == original_id,
                     deliveries.c.channel != IN_PERSON,
                     deliveries.c.status.in_(HANDED_OVER)))
    conn.execute(insert(deliveries).from_select(
        ["announcement_id", *copied, "status", "attempts", "updated_at"], source))
    groups = conn.execute(select(deliveries.c.channel, deliveries.c.batch, func.count())
                          .where(deliveries.c.announcement_id == correction_id)
                          .group_by(deliveries.c.channel, deliveries.c.batch)).all()
    totals: Counter = Counter()
    for channel, _batch, count in groups:
        totals[channel] += count
    for channel, count in totals.items():
        bump(conn, correction_id, channel, {"queued": count})
    return [tuple(group) for group in groups]


def pending_batches(conn: Connection, *, planned_before: datetime | None = None) -> list:
    """(announcement, channel, batch) groups that still have pending deliveries."""
    query = (select(deliveries.c.announcement_id, deliveries.c.channel, deliveries.c.batch,
                    func.count().label("pending"))
             .where(deliveries.c.status.in_(PENDING))
             .group_by(deliveries.c.announcement_id, deliveries.c.channel, deliveries.c.batch))
    if planned_before is not None:
        query = query.where(and_(deliveries.c.updated_at < planned_before))
    return conn.execute(query).all()
