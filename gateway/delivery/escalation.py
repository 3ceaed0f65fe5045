"""After a permanent failure, the next channel in the resident's policy.

The new delivery is written unless that channel is already planned for the
resident for this announcement (never two of the same); the unique key on
(announcement, channel, recipient) holds that even when two channels fail at
the same moment in two workers.
"""
from __future__ import annotations

import json
from typing import Sequence

from flask import current_app
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from audiences.policy import next_channel
from channels.registry import PLACE_CHANNELS
from gateway.store import ledger
from gateway.delivery import providers, queues
from gateway.store.db import utcnow
from gateway.store.schema import deliveries, residents


def escalate(conn: Connection, announcement, failed_channel: str, batch: int,
             recipient_ids: Sequence[int]) -> dict[str, int]:
    """Plan the fallback channel for residents whose ``failed_channel`` failed for good
    and whom no other channel has reached.

    Returns the new deliveries per channel; the caller queues ``batch_for(batch)``
    of each once its transaction has committed."""
    if failed_channel in PLACE_CHANNELS or not recipient_ids:
        return {}
    allowed = set(json.loads(announcement.channels)) & providers.available_channels(current_app.config)
    planned: dict[int, set[str]] = {}
    reached: set[int] = set()
    for row in conn.execute(select(deliveries.c.recipient_id, deliveries.c.channel,
                                   deliveries.c.status)
                            .where(deliveries.c.announcement_id == announcement.id,
                                   deliveries.c.recipient_id.in_(list(recipient_ids)),
                                   deliveries.c.channel.notin_(PLACE_CHANNELS))):
        planned.setdefault(row.recipient_id, set()).add(row.channel)
        if row.status in ledger.REACHED:
            reached.add(row.recipient_id)
    added: dict[str, int] = {}
    target_batch = batch_for(batch)
    year = utcnow().year
    waiting = [i for i in recipient_ids if i not in reached]  # another channel got through
    for person in conn.execute(select(residents).where(residents.c.id.in_(waiting))):
        channel = next_channel(person, severity=announcement.severity,
                               policy=current_app.extensions["policy"], available=allowed,
                               already=planned.get(person.id, set()), year=year)
        if channel and _insert_once(conn, announcement, channel, person, target_batch):
            added[channel] = added.get(channel, 0) + 1
    for channel, count in added.items():
        ledger.ensure_counts(conn, announcement.id, [channel])
        ledger.bump(conn, announcement.id, channel, {"queued": count})
    return added


def batch_for(batch: int) -> int:
    """The batch escalations from a given batch are written to (and queued as, after commit)."""
    return queues.ESCALATION_BATCH + batch


def _insert_once(conn: Connection, announcement, channel: str, person, batch: int) -> bool:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(deliveries).values(
        announcement_id=announcement.id, channel=channel, recipient_id=person.id,
        address=person.wechat_openid if channel == "wechat" else person.phone,
        language=announcement.language, batch=batch, status="queued", attempts=0,
        updated_at=utcnow()).on_conflict_do_nothing().returning(deliveries.c.id)
    return conn.execute(statement).first() is not None
