"""Running counts per (announcement, channel, status), kept in the same transaction as the
rows, so the status page reads a handful of rows instead of scanning millions."""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from sqlalchemy import Connection, bindparam, delete, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.db import utcnow
from gateway.store.ledger.statuses import STATUSES
from gateway.store.schema import deliveries, delivery_counts, reached

#: The delivery_counts row holding how many residents have been reached.
REACHED_KEY = ("*", "reached")
#: The delivery_counts row holding how many residents confirmed (pressed or replied 1).
CONFIRMED_KEY = ("*", "confirmed")
#: The delivery_counts row holding how many residents the plan found in the audience.
AUDIENCE_KEY = ("*", "audience")
#: The delivery_counts row holding how many deliveries were sent again after their
#: worker died mid-send: each may have reached its resident twice.
RESENT_KEY = ("*", "resent")


def ensure_counts(conn: Connection, announcement_id: int, channels: Iterable[str]) -> None:
    existing = {row.channel for row in conn.execute(
        select(delivery_counts.c.channel).distinct()
        .where(delivery_counts.c.announcement_id == announcement_id))}
    rows = [{"announcement_id": announcement_id, "channel": channel, "status": status, "count": 0}
            for channel in sorted(set(channels) - existing) for status in STATUSES]
    if rows:
        conn.execute(insert(delivery_counts), rows)


# Built once: the jobs bump counts with every chunk of results, and building the statement
# cost more CPU than running it.
_BUMP = (update(delivery_counts)
         .where(delivery_counts.c.announcement_id == bindparam("counted_announcement"),
                delivery_counts.c.channel == bindparam("counted_channel"),
                delivery_counts.c.status == bindparam("counted_status"))
         .values(count=delivery_counts.c.count + bindparam("delta")))


def bump(conn: Connection, announcement_id: int, channel: str, deltas: Mapping[str, int]) -> None:
    """Add to the running counts; statuses in a fixed order so concurrent writers never deadlock."""
    changes = [{"counted_announcement": announcement_id, "counted_channel": channel,
                "counted_status": status, "delta": deltas[status]}
               for status in sorted(s for s, n in deltas.items() if n)]
    if changes:
        conn.execute(_BUMP, changes)


def count_reached(conn: Connection, announcement_id: int, ids: Sequence[int], status: str) -> None:
    """Note residents reached (or confirmed) for the first time by these deliveries, with the
    channel and the time, and count them."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    now = utcnow()
    first_time = len(conn.execute(
        dialect.insert(reached).from_select(
            ["announcement_id", "recipient_id", "channel", "reached_at"],
            select(deliveries.c.announcement_id, deliveries.c.recipient_id, deliveries.c.channel,
                   literal(now, reached.c.reached_at.type))
            .where(deliveries.c.id.in_(list(ids)), deliveries.c.status == status)
            .order_by(deliveries.c.id))
        .on_conflict_do_nothing().returning(reached.c.recipient_id)).all())
    add_to(conn, announcement_id, REACHED_KEY, first_time)
    if status == "confirmed":
        confirmed = conn.execute(
            update(reached).where(reached.c.announcement_id == announcement_id,
                                  reached.c.confirmed_at.is_(None),
                                  reached.c.recipient_id.in_(
                                      select(deliveries.c.recipient_id)
                                      .where(deliveries.c.id.in_(list(ids)),
                                             deliveries.c.status == status)))
            .values(confirmed_at=now)).rowcount
        add_to(conn, announcement_id, CONFIRMED_KEY, confirmed)


def add_to(conn: Connection, announcement_id: int, key: tuple[str, str], count: int) -> None:
    """Add to one of the announcement's running totals (``REACHED_KEY``, ``CONFIRMED_KEY``,
    ``RESENT_KEY``)."""
    if not count:
        return
    where = total_key(announcement_id, key)
    if not conn.execute(select(delivery_counts.c.count).where(*where)).first():
        conn.execute(insert(delivery_counts).values(announcement_id=announcement_id,
                                                    channel=key[0], status=key[1], count=0))
    conn.execute(update(delivery_counts).where(*where)
                 .values(count=delivery_counts.c.count + count))


def total_key(announcement_id: int, key: tuple[str, str]):
    return (delivery_counts.c.announcement_id == announcement_id,
            delivery_counts.c.channel == key[0], delivery_counts.c.status == key[1])


def reached_count(conn: Connection, announcement_id: int) -> int:
    """Residents any personal channel has reached; a running count, no scan."""
    return conn.execute(select(delivery_counts.c.count)
                        .where(*total_key(announcement_id, REACHED_KEY))).scalar() or 0


def confirmed_count(conn: Connection, announcement_id: int) -> int:
    """Residents who confirmed over a personal channel; a running count, no scan."""
    return conn.execute(select(delivery_counts.c.count)
                        .where(*total_key(announcement_id, CONFIRMED_KEY))).scalar() or 0


def set_audience(conn: Connection, announcement_id: int, residents: int) -> None:
    """Record how many residents the plan found in the announcement's audience."""
    conn.execute(delete(delivery_counts).where(*total_key(announcement_id, AUDIENCE_KEY)))
    conn.execute(insert(delivery_counts).values(announcement_id=announcement_id,
                                                channel=AUDIENCE_KEY[0], status=AUDIENCE_KEY[1],
                                                count=residents))


def audience_count(conn: Connection, announcement_id: int) -> int | None:
    """Residents in the audience when the plan ran; None before a plan recorded it."""
    return conn.execute(select(delivery_counts.c.count)
                        .where(*total_key(announcement_id, AUDIENCE_KEY))).scalar()


def resent_count(conn: Connection, announcement_id: int) -> int:
    """Deliveries sent again after an unknown outcome: each possibly reached its resident twice."""
    return conn.execute(select(delivery_counts.c.count)
                        .where(*total_key(announcement_id, RESENT_KEY))).scalar() or 0


def counts(conn: Connection, announcement_id: int) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {}
    for row in conn.execute(select(delivery_counts)
                            .where(delivery_counts.c.announcement_id == announcement_id,
                                   delivery_counts.c.channel != REACHED_KEY[0])):
        result.setdefault(row.channel, {status: 0 for status in STATUSES})[row.status] = row.count
    return result
