"""After a permanent failure, the next channel in the resident's policy.

The new delivery is written unless that channel is already planned for the
resident for this announcement (never two of the same); the unique key on
(announcement, channel, recipient) holds that even when two channels fail at
the same moment in two workers.

A number the provider called invalid is dead for every channel using it
(``number_invalid``): it is marked on the resident, their other pending sends
to it for this announcement fail with it, and escalation treats a marked phone
as no phone, so an SMS to a dead number is followed by WeChat, or by nothing
(the resident stays on the unreached list), never by a call to the same number.
"""
from __future__ import annotations

import json
from typing import Sequence

from flask import current_app
from sqlalchemy import Connection, select

from audiences.policy import address_of, next_channel
from channels.registry import PLACE_CHANNELS
from gateway.delivery import lifecycle, providers, queues
from gateway.store import ledger
from gateway.store.db import utcnow
from gateway.store import roster
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
    target_batch = batch_for(batch)
    year = utcnow().year
    written_in = lifecycle.languages(conn, announcement)
    rows = []
    waiting = [i for i in recipient_ids if i not in reached]  # another channel got through
    for person in conn.execute(select(*(c for c in residents.c if c.name != "phone"),
                                      roster.usable_phone()).where(residents.c.id.in_(waiting))):
        channel = next_channel(person, severity=announcement.severity,
                               policy=current_app.extensions["policy"], available=allowed,
                               already=planned.get(person.id, set()), year=year)
        if channel:
            rows.append({"channel": channel, "recipient_id": person.id,
                         "address": address_of(person, channel),
                         "language": lifecycle.language_for(person, written_in, announcement),
                         "batch": target_batch})
    return dict(ledger.add_missing(conn, announcement.id, rows))


def number_invalid(conn: Connection, announcement_id: int, recipient_id: int, address: str,
                   reason: str) -> None:
    """The provider said ``address`` (a phone number) does not exist: mark it on the resident
    and fail what else of this announcement waits to go to it. Call before ``escalate``."""
    roster.mark_phone_invalid(conn, recipient_id, address, reason)
    ledger.fail_pending_to(conn, announcement_id, recipient_id, address,
                           f"not sent: the number is invalid ({reason})")


def batch_for(batch: int) -> int:
    """The batch escalations from a given batch are written to (and queued as, after commit)."""
    return queues.ESCALATION_BATCH + batch
