"""Status changes: results of sends, provider callbacks and device acks, retries, cancels.
Statuses move forward only; the ways back (``reschedule``) are explicit."""
from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from sqlalchemy import Connection, bindparam, case, func, select, update

from channels.registry import PERSONAL_CHANNELS
from gateway.store.db import utcnow
from gateway.store.ledger.statuses import PENDING, REACHED, may_move
from gateway.store.ledger.totals import bump, count_reached
from gateway.store.schema import deliveries, delivery_counts


_STILL_SENDING = deliveries.c.status == "sending"
# Built once, as the jobs run them with every chunk of results (see ``totals._BUMP``).
_NOTE_OUTCOME = (update(deliveries).where(deliveries.c.id == bindparam("delivery_id"))
                 .values(provider_id=case((_STILL_SENDING, bindparam("given_provider_id")),
                                          else_=func.coalesce(deliveries.c.provider_id,
                                                              bindparam("given_provider_id"))),
                         last_error=case((_STILL_SENDING, bindparam("error")),
                                         else_=deliveries.c.last_error)))
_SETTLE = (update(deliveries)
           .where(deliveries.c.id.in_(bindparam("settled_ids", expanding=True)), _STILL_SENDING)
           .values(status=bindparam("new_status"), updated_at=bindparam("now")))


def settle(conn: Connection, announcement_id: int, channel: str, new: str,
           outcomes: Sequence[tuple[int, str | None, str | None]]) -> int:
    """Record the result of sends this job claimed: (delivery id, provider id, error).

    Only rows still ``sending`` move; a provider callback that already moved a
    row further (delivered before we recorded sent) is left as it is: its time
    and error stay the callback's, only a provider id it lacked is filled in.
    """
    if not outcomes:
        return 0
    conn.execute(_NOTE_OUTCOME, [{"delivery_id": i, "given_provider_id": p, "error": clip(e)}
                                 for i, p, e in outcomes])
    ids = [i for i, _, _ in outcomes]
    moved = conn.execute(_SETTLE, {"settled_ids": ids, "new_status": new,
                                   "now": utcnow()}).rowcount
    bump(conn, announcement_id, channel, {"sending": -moved, new: moved})
    if moved and new in REACHED and channel in PERSONAL_CHANNELS:
        count_reached(conn, announcement_id, ids, new)
    return moved


def reschedule(conn: Connection, announcement_id: int, channel: str, ids: Sequence[int],
               error: str, *, from_status: str = "sending") -> int:
    """Put deliveries back to ``planned`` for a later try (a transient failure).

    The provider id is forgotten: the next try (a new call) gets its own, and its
    callbacks may arrive before the job records it.
    """
    if not ids:
        return 0
    moved = conn.execute(update(deliveries)
                         .where(deliveries.c.id.in_(list(ids)),
                                deliveries.c.status == from_status)
                         .values(status="planned", last_error=clip(error), provider_id=None,
                                 updated_at=utcnow())).rowcount
    bump(conn, announcement_id, channel, {from_status: -moved, "planned": moved})
    return moved


def forgive_attempt(conn: Connection, ids: Sequence[int]) -> None:
    """A try that never reached the provider (the channel was paused) does not count."""
    conn.execute(update(deliveries).where(deliveries.c.id.in_(list(ids)), deliveries.c.attempts > 0)
                 .values(attempts=deliveries.c.attempts - 1))


def transition(conn: Connection, delivery_id: int, new: str, *, provider_id: str | None = None,
               error: str | None = None, provider_must_match: bool = False) -> bool:
    """Move one delivery forward (a provider callback); anything else changes nothing.

    The move is conditional on the status just read; when a job moved the row in
    between (a callback racing the job that records ``sent``), it is read again.
    With ``provider_must_match`` (a provider's callback) the row moves only when
    ``provider_id`` is the one recorded for it, or none is recorded yet (the
    callback overtook the job that records it): a callback about another
    message or call never moves nor relabels this one.
    """
    for _ in range(3):
        row = conn.execute(select(deliveries.c.announcement_id, deliveries.c.channel,
                                  deliveries.c.status, deliveries.c.provider_id)
                           .where(deliveries.c.id == delivery_id)).first()
        if row is None or not may_move(row.status, new):
            return False
        if provider_must_match and not provider_matches(row.provider_id, provider_id):
            return False
        values = {"status": new, "updated_at": utcnow()}
        if provider_id:
            values["provider_id"] = provider_id
        if error:
            values["last_error"] = clip(error)
        same_provider = (deliveries.c.provider_id.is_(None) if row.provider_id is None
                         else deliveries.c.provider_id == row.provider_id)
        moved = conn.execute(update(deliveries)
                             .where(deliveries.c.id == delivery_id,
                                    deliveries.c.status == row.status, same_provider)
                             .values(**values)).rowcount
        if moved:
            bump(conn, row.announcement_id, row.channel, {row.status: -1, new: 1})
            if new in REACHED and row.channel in PERSONAL_CHANNELS:
                count_reached(conn, row.announcement_id, [delivery_id], new)
            return True
    return False


def provider_matches(recorded: str | None, claimed: str | None) -> bool:
    """Whether a provider's callback naming ``claimed`` may speak for a row that recorded ``recorded``."""
    return bool(claimed) and (recorded is None or recorded == claimed)


def advance(conn: Connection, targets: Mapping[int, str]) -> int:
    """Move many deliveries forward at once (a batch of device acks): delivery id → new status.

    The same rule as ``transition`` for each row, in a handful of statements
    however many rows: the rows are held first (a write; on SQLite that takes
    the database's write lock, on PostgreSQL the rows' locks), so the statuses
    read cannot change before they are moved.
    """
    if not targets:
        return 0
    ids = list(targets)
    conn.execute(update(deliveries).where(deliveries.c.id.in_(ids))
                 .values(updated_at=deliveries.c.updated_at))
    rows = conn.execute(select(deliveries.c.id, deliveries.c.announcement_id, deliveries.c.channel,
                               deliveries.c.status).where(deliveries.c.id.in_(ids))).all()
    moves = [(row, targets[row.id]) for row in rows if may_move(row.status, targets[row.id])]
    if not moves:
        return 0
    conn.execute(update(deliveries).where(deliveries.c.id == bindparam("delivery_id"))
                 .values(status=bindparam("new"), updated_at=utcnow()),
                 [{"delivery_id": row.id, "new": new} for row, new in moves])
    deltas: dict[tuple[int, str], Counter] = {}
    newly_reached: dict[tuple[int, str], list[int]] = {}
    for row, new in moves:
        counts = deltas.setdefault((row.announcement_id, row.channel), Counter())
        counts[row.status] -= 1
        counts[new] += 1
        if new in REACHED and row.channel in PERSONAL_CHANNELS:
            newly_reached.setdefault((row.announcement_id, new), []).append(row.id)
    for (announcement_id, channel), counts in sorted(deltas.items()):
        bump(conn, announcement_id, channel, counts)
    for (announcement_id, new), moved_ids in sorted(newly_reached.items()):
        count_reached(conn, announcement_id, moved_ids, new)
    return len(moves)


def fail_pending_to(conn: Connection, announcement_id: int, recipient_id: int, address: str,
                    reason: str) -> int:
    """Fail a resident's deliveries of one announcement still waiting to go to ``address``
    (a number found invalid by another channel), without trying them."""
    total = 0
    for row in conn.execute(select(deliveries.c.id, deliveries.c.channel, deliveries.c.status)
                            .where(deliveries.c.announcement_id == announcement_id,
                                   deliveries.c.recipient_id == recipient_id,
                                   deliveries.c.channel.in_(PERSONAL_CHANNELS),
                                   deliveries.c.address == address,
                                   deliveries.c.status.in_(PENDING))).all():
        moved = conn.execute(update(deliveries)
                             .where(deliveries.c.id == row.id, deliveries.c.status == row.status)
                             .values(status="failed", last_error=clip(reason),
                                     updated_at=utcnow())).rowcount
        bump(conn, announcement_id, row.channel, {row.status: -moved, "failed": moved})
        total += moved
    return total


def cancel_pending(conn: Connection, announcement_id: int, reason: str) -> int:
    """Cancel everything not yet handed to a provider."""
    total = 0
    for channel, old in conn.execute(
            select(delivery_counts.c.channel, delivery_counts.c.status)
            .where(delivery_counts.c.announcement_id == announcement_id,
                   delivery_counts.c.status.in_(PENDING), delivery_counts.c.count > 0)).all():
        moved = conn.execute(update(deliveries)
                             .where(deliveries.c.announcement_id == announcement_id,
                                    deliveries.c.channel == channel, deliveries.c.status == old)
                             .values(status="cancelled", last_error=reason,
                                     updated_at=utcnow())).rowcount
        bump(conn, announcement_id, channel, {old: -moved, "cancelled": moved})
        total += moved
    return total


def held_for_update(conn: Connection, *conditions):
    """The delivery matching ``conditions``, held until this transaction ends.

    Writing to the row first holds it (and on SQLite, where FOR UPDATE does
    nothing, the database), so a status read here cannot change before the
    caller moves it: a device ack racing the job that records the batch as sent.
    """
    conn.execute(update(deliveries).where(*conditions).values(updated_at=deliveries.c.updated_at))
    return conn.execute(select(deliveries).where(*conditions)).first()


def note(conn: Connection, delivery_id: int, text: str) -> None:
    """Keep what the far end said about a delivery without changing its status."""
    conn.execute(update(deliveries).where(deliveries.c.id == delivery_id)
                 .values(last_error=clip(text)))


def clip(text: str | None) -> str | None:
    return None if text is None else text[:500]
