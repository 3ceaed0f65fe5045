"""In-person deliveries: a grid worker told the resident at their door.

"Told in person" is a delivery like any other, on the channel ``in_person``, written here
``confirmed`` with the worker's name as its address (its source) and counted in reached and
confirmed with the other personal channels. It ends the notice's other sends to that
resident: what is still pending for them is cancelled now, and a send put back for a later
try after the visit (a call not answered) is cancelled when a job comes to claim it
(``cancel_visited``), so nobody told at the door is called again.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from sqlalchemy import Connection, and_, bindparam, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite

from channels.registry import IN_PERSON
from gateway.store.db import utcnow
from gateway.store.ledger.statuses import PENDING
from gateway.store.ledger.totals import bump, count_reached, ensure_counts
from gateway.store.schema import deliveries, delivery_counts

#: The batch in-person deliveries are written in: no job ever sends them.
VISIT_BATCH = 0


def record_in_person(conn: Connection, announcement_id: int, recipient_id: int, worker: str,
                     language: str) -> bool:
    """Write the resident's in-person delivery, confirmed, and cancel what else waits to go to
    them; False (nothing changed) when they were already told in person."""
    ensure_counts(conn, announcement_id, [IN_PERSON])
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    written = conn.execute(dialect.insert(deliveries).values(
        announcement_id=announcement_id, channel=IN_PERSON, recipient_id=recipient_id,
        address=worker[:64], language=language, batch=VISIT_BATCH, status="confirmed",
        attempts=1, updated_at=utcnow())
        .on_conflict_do_nothing().returning(deliveries.c.id)).first()
    if written is None:
        return False
    bump(conn, announcement_id, IN_PERSON, {"confirmed": 1})
    count_reached(conn, announcement_id, [written.id], "confirmed")
    _cancel(conn, announcement_id, [deliveries.c.recipient_id == recipient_id],
            f"told in person by {worker}")
    return True


_VISITED = select(delivery_counts.c.count).where(
    delivery_counts.c.announcement_id == bindparam("visited_announcement"),
    delivery_counts.c.channel == IN_PERSON, delivery_counts.c.status == "confirmed")


def cancel_visited(conn: Connection, announcement_id: int, conditions: Sequence,
                   params: Mapping[str, object]) -> int:
    """Cancel pending deliveries matching ``conditions`` (their bound ``params``) whose
    resident was told in person.

    One read of a running count when nobody was (the common case), so claiming stays cheap.
    """
    visited = conn.execute(_VISITED, {"visited_announcement": announcement_id}).scalar()
    if not visited:
        return 0
    visit = deliveries.alias("visit")
    told = exists().where(visit.c.announcement_id == announcement_id,
                          visit.c.channel == IN_PERSON,
                          visit.c.recipient_id == deliveries.c.recipient_id)
    return _cancel(conn, announcement_id, [*conditions, told], "told in person", params)


def _cancel(conn: Connection, announcement_id: int, conditions: list, reason: str,
            params: Mapping[str, object] | None = None) -> int:
    total = 0
    for old in PENDING:
        rows = conn.execute(update(deliveries)
                            .where(deliveries.c.announcement_id == announcement_id,
                                   deliveries.c.channel != IN_PERSON,
                                   deliveries.c.status == old, and_(*conditions))
                            .values(status="cancelled", last_error=reason, updated_at=utcnow())
                            .returning(deliveries.c.channel), params or {}).all()
        for channel in {row.channel for row in rows}:
            moved = sum(1 for row in rows if row.channel == channel)
            bump(conn, announcement_id, channel, {old: -moved, "cancelled": moved})
        total += len(rows)
    return total
