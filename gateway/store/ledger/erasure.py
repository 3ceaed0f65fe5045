"""A resident who deleted their record (the self-registration page, PIPL's right to erasure):
their deliveries keep their statuses and counts, so every report stays whole, but no longer
say where they went, and those not yet handed to a provider are cancelled."""
from __future__ import annotations

from sqlalchemy import Connection, func, select, update

from channels.registry import PERSONAL_CHANNELS
from gateway.store.db import utcnow
from gateway.store.ledger.moves import clip
from gateway.store.ledger.statuses import PENDING
from gateway.store.ledger.totals import bump
from gateway.store.schema import deliveries

ERASED = "erased"
CANCEL_REASON = "the resident deleted their record"


def anonymise_recipient(conn: Connection, resident_id: int, addresses: list[str]) -> int:
    """Cancel the resident's deliveries still waiting, then blank their address everywhere (and
    in any provider error quoting one of ``addresses``); returns the deliveries anonymised."""
    mine = (deliveries.c.recipient_id == resident_id, deliveries.c.channel.in_(PERSONAL_CHANNELS))
    for row in conn.execute(select(deliveries.c.id, deliveries.c.announcement_id,
                                   deliveries.c.channel, deliveries.c.status)
                            .where(*mine, deliveries.c.status.in_(PENDING))).all():
        moved = conn.execute(update(deliveries)
                             .where(deliveries.c.id == row.id, deliveries.c.status == row.status)
                             .values(status="cancelled", last_error=clip(CANCEL_REASON),
                                     updated_at=utcnow())).rowcount
        bump(conn, row.announcement_id, row.channel, {row.status: -moved, "cancelled": moved})
    error = deliveries.c.last_error
    for address in filter(None, addresses):
        error = func.replace(error, address, ERASED)
    return conn.execute(update(deliveries).where(*mine)
                        .values(address=ERASED, last_error=error)).rowcount
