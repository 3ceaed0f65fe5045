"""Claims and leases: a worker holds what it sends, renews the hold while it works, and
what a worker gone for good held is taken back."""
from __future__ import annotations

import functools
from datetime import timedelta
from typing import Callable, Sequence

from sqlalchemy import Connection, bindparam, select, update

from gateway.store.db import utcnow
from gateway.store.ledger.moves import reschedule
from gateway.store.ledger.statuses import PENDING
from gateway.store.ledger.totals import RESENT_KEY, add_to, bump
from gateway.store.ledger.visits import cancel_visited
from gateway.store.schema import deliveries


def claim(conn: Connection, announcement_id: int, channel: str, *, owner: str, lease: timedelta,
          batch: int | None = None, ids: Sequence[int] | None = None) -> list:
    """Mark pending deliveries ``sending``, leased to ``owner``, and return them: only
    what is claimed is sent.

    A second run of the same job finds nothing left to claim, so a retried job
    never sends twice what the ledger holds as sent. The owner's heartbeat renews the
    lease while it works (``renew``) and the job checks its hold before each chunk
    (``held_by``); ``reclaim_abandoned`` takes back what it stops renewing.
    Deliveries to a resident a grid worker has told in person are cancelled, not claimed.
    """
    where, params = _claim_filter(batch is not None, ids is not None), {
        "claimed_announcement": announcement_id, "claimed_channel": channel}
    if batch is not None:
        params["claimed_batch"] = batch
    if ids is not None:
        params["claimed_ids"] = list(ids)
    cancel_visited(conn, announcement_id, where, params)
    claimed = []
    now = utcnow()
    for old in PENDING:
        rows = conn.execute(_claim_from(old, batch is not None, ids is not None), {
            **params, "now": now, "lease_owner": owner, "lease_until": now + lease}).all()
        if rows:
            bump(conn, announcement_id, channel, {old: -len(rows), "sending": len(rows)})
            claimed.extend(rows)
    return sorted(claimed, key=lambda row: row.id)


# The claim's statements are built once per kind (see ``totals._BUMP``): a job claims with
# every batch.
@functools.cache
def _claim_filter(by_batch: bool, by_ids: bool) -> tuple:
    where = [deliveries.c.announcement_id == bindparam("claimed_announcement"),
             deliveries.c.channel == bindparam("claimed_channel")]
    if by_batch:
        where.append(deliveries.c.batch == bindparam("claimed_batch"))
    if by_ids:
        where.append(deliveries.c.id.in_(bindparam("claimed_ids", expanding=True)))
    return tuple(where)


@functools.cache
def _claim_from(old: str, by_batch: bool, by_ids: bool):
    return (update(deliveries).where(*_claim_filter(by_batch, by_ids), deliveries.c.status == old)
            .values(status="sending", attempts=deliveries.c.attempts + 1,
                    updated_at=bindparam("now"), lease_owner=bindparam("lease_owner"),
                    lease_until=bindparam("lease_until"))
            .returning(deliveries.c.id, deliveries.c.recipient_id, deliveries.c.address,
                       deliveries.c.language, deliveries.c.attempts))


# A row its owner still holds: still ``sending``, still its own (the ``owner`` parameter).
_HELD = (deliveries.c.id.in_(bindparam("held_ids", expanding=True)),
         deliveries.c.status == "sending", deliveries.c.lease_owner == bindparam("owner"))
# Built once: a job checks its hold before every chunk (see ``totals._BUMP``).
_HELD_BY = select(deliveries.c.id).where(*_HELD)


def renew(conn: Connection, ids: Sequence[int], owner: str, lease: timedelta) -> set[int]:
    """Extend the owner's lease on these rows; returns those it still holds."""
    if not ids:
        return set()
    return set(conn.execute(update(deliveries).where(*_HELD)
                            .values(lease_until=utcnow() + lease).returning(deliveries.c.id),
                            {"held_ids": list(ids), "owner": owner}).scalars())


def held_by(conn: Connection, ids: Sequence[int], owner: str) -> set[int]:
    """The rows among ``ids`` the owner still holds, the only ones it may send. A read: the
    heartbeat extends the leases (``renew``), so a job checking before each chunk need not
    rewrite every row's lease and its index entry."""
    if not ids:
        return set()
    return set(conn.execute(_HELD_BY, {"held_ids": list(ids), "owner": owner}).scalars())


def release(conn: Connection, ids: Sequence[int], owner: str) -> int:
    """Give up the lease on rows whose outcome this owner does not know (it stopped
    mid-send): the reconciler takes them back as soon as the lease runs out."""
    if not ids:
        return 0
    return conn.execute(update(deliveries).where(*_HELD).values(lease_owner=None),
                        {"held_ids": list(ids), "owner": owner}).rowcount


def reclaim_abandoned(conn: Connection, owner_alive: Callable[[str], bool]) -> dict:
    """Deliveries whose lease ran out and whose worker is gone go back to planned.

    The provider may or may not have taken them: this is the one place a
    duplicate is possible, so each row counts an unknown outcome and the
    announcement's running count of possible duplicates goes up.
    Returns the number of rows taken back per (announcement, channel).
    """
    expired = conn.execute(select(deliveries.c.id, deliveries.c.announcement_id,
                                  deliveries.c.channel, deliveries.c.lease_owner)
                           .where(deliveries.c.status == "sending",
                                  deliveries.c.lease_until < utcnow())).all()
    verdicts: dict[str | None, bool] = {}
    by_group: dict[tuple[int, str], list[int]] = {}
    for row in expired:
        if row.lease_owner not in verdicts:
            verdicts[row.lease_owner] = row.lease_owner is not None and owner_alive(row.lease_owner)
        if not verdicts[row.lease_owner]:
            by_group.setdefault((row.announcement_id, row.channel), []).append(row.id)
    taken: dict[tuple[int, str], int] = {}
    for (announcement_id, channel), ids in sorted(by_group.items()):
        conn.execute(update(deliveries).where(deliveries.c.id.in_(ids),
                                              deliveries.c.status == "sending")
                     .values(unknown_outcomes=deliveries.c.unknown_outcomes + 1,
                             lease_owner=None))
        moved = reschedule(conn, announcement_id, channel, ids,
                           "worker lost mid-send; sent again (possibly twice)")
        add_to(conn, announcement_id, RESENT_KEY, moved)
        taken[(announcement_id, channel)] = moved
    return taken
