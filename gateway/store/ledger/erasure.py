"""A resident who deleted their record (the self-registration page, PIPL's right to erasure):
their deliveries keep their statuses and counts, so every report stays whole, but no longer
say where they went, and those not yet handed to a provider are cancelled."""
from __future__ import annotations

from sqlalchemy import Connection, select, update

from channels.registry import PERSONAL_CHANNELS
from gateway.store.db import utcnow
from gateway.store.ledger.statuses import PENDING
from gateway.store.ledger.totals import bump
from gateway.store.schema import deliveries

def anonymise_recipient(conn: Connection, resident_id: int) -> int:
    """Cancel the resident's deliveries still waiting, then blank where each of their deliveries
    went, as retention does (``gateway.store.ledger.retention``): address, provider id (the
    provider's record names the number) and last error (which may quote it). Returns how many."""
    mine = (deliveries.c.recipient_id == resident_id, deliveries.c.channel.in_(PERSONAL_CHANNELS))
    for row in conn.execute(select(deliveries.c.id, deliveries.c.announcement_id,
                                   deliveries.c.channel, deliveries.c.status)
                            .where(*mine, deliveries.c.status.in_(PENDING))).all():
        moved = conn.execute(update(deliveries)
                             .where(deliveries.c.id == row.id, deliveries.c.status == row.status)
                             .values(status="cancelled", updated_at=utcnow())).rowcount
        bump(conn, row.announcement_id, row.channel, {row.status: -moved, "cancelled": moved})
    return conn.execute(update(deliveries).where(*mine)
                        .values(address="", provider_id=None, last_error=None,
                                lease_owner=None)).rowcount
