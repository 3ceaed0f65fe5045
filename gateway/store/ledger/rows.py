"""New delivery rows: a plan's, an escalation's, a correction's; and the batches still pending."""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Mapping, Sequence

from sqlalchemy import Connection, and_, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from channels.registry import IN_PERSON
from gateway.store.db import utcnow
from gateway.store.ledger.statuses import HANDED_OVER, PENDING
from gateway.store.ledger.totals import REACHED_KEY, bump, ensure_counts
from gateway.store.schema import deliveries, delivery_counts


def add(conn: Connection, announcement_id: int, rows: Sequence[Mapping], *,
        status: str = "queued") -> None:
    """Write new deliveries in one statement; each row has channel, recipient_id,
    address, language and batch.

    The rows go to the driver as plain tuples: SQLAlchemy's per-row parameter
    handling was a third of the time of planning a million deliveries.
    """
    if not rows:
        return
    process = deliveries.c.updated_at.type.bind_processor(conn.dialect)
    stamp = process(utcnow()) if process else utcnow()
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(
        f"INSERT INTO deliveries ({', '.join(_ADD_COLUMNS)}) "
        f"VALUES ({', '.join([marker] * len(_ADD_COLUMNS))})",
        [(announcement_id, row["channel"], row["recipient_id"], row["address"], row["language"],
          row["batch"], status, 0, stamp) for row in rows])
    for channel, count in Counter(row["channel"] for row in rows).items():
        bump(conn, announcement_id, channel, {status: count})


_ADD_COLUMNS = ("announcement_id", "channel", "recipient_id", "address", "language", "batch",
                "status", "attempts", "updated_at")


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

    Not in person: no job sends those, so a resident only a grid worker told is not in the
    correction's audience (docs/grid-workers.md)."""
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
