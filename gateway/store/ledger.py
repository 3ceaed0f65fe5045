"""The delivery ledger: one row per (announcement, channel, recipient), moved forward only.

Every status change goes through here, in the same transaction as the running
counts in ``delivery_counts``, so the status page reads a handful of rows
instead of scanning millions. Statuses move forward only; the two ways back
(``reschedule`` for a retry, ``reclaim_abandoned``) are explicit and owned by jobs.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Callable, Iterable, Mapping, Sequence

from sqlalchemy import Connection, and_, bindparam, func, insert, select, update

from sqlalchemy.dialects import postgresql, sqlite

from channels.registry import PERSONAL_CHANNELS
from gateway.store.db import utcnow
from gateway.store.schema import deliveries, delivery_counts, reached

STATUSES = ("planned", "queued", "sending", "sent", "delivered", "confirmed", "failed",
            "cancelled")
PENDING = ("planned", "queued")
#: A personal delivery in one of these has reached its resident.
REACHED = ("delivered", "confirmed")
#: The provider took these: a correction goes to each, and an SMS reply answers the latest.
HANDED_OVER = ("sent", *REACHED)
FINAL = ("delivered", "confirmed", "failed", "cancelled")
#: The delivery_counts row holding how many residents have been reached.
REACHED_KEY = ("*", "reached")
#: The delivery_counts row holding how many deliveries were sent again after their
#: worker died mid-send: each may have reached its resident twice.
RESENT_KEY = ("*", "resent")
_RANK = {"planned": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4, "confirmed": 5}
# failed may follow anything not yet delivered; cancelled only what no job holds.
_FAILABLE = ("planned", "queued", "sending", "sent")


def may_move(old: str, new: str) -> bool:
    if new == "failed":
        return old in _FAILABLE
    if new == "cancelled":
        return old in PENDING
    return old in _RANK and new in _RANK and _RANK[new] > _RANK[old]


def ensure_counts(conn: Connection, announcement_id: int, channels: Iterable[str]) -> None:
    existing = {row.channel for row in conn.execute(
        select(delivery_counts.c.channel).distinct()
        .where(delivery_counts.c.announcement_id == announcement_id))}
    rows = [{"announcement_id": announcement_id, "channel": channel, "status": status, "count": 0}
            for channel in sorted(set(channels) - existing) for status in STATUSES]
    if rows:
        conn.execute(insert(delivery_counts), rows)


def bump(conn: Connection, announcement_id: int, channel: str, deltas: Mapping[str, int]) -> None:
    """Add to the running counts; statuses in a fixed order so concurrent writers never deadlock."""
    for status in sorted(s for s, n in deltas.items() if n):
        conn.execute(update(delivery_counts)
                     .where(delivery_counts.c.announcement_id == announcement_id,
                            delivery_counts.c.channel == channel,
                            delivery_counts.c.status == status)
                     .values(count=delivery_counts.c.count + deltas[status]))


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
    channels, addresses, languages and batches; returns (channel, batch, count) groups."""
    channels = [row.channel for row in conn.execute(
        select(delivery_counts.c.channel).distinct()
        .where(delivery_counts.c.announcement_id == original_id,
               delivery_counts.c.channel != REACHED_KEY[0]))]
    ensure_counts(conn, correction_id, channels)
    copied = ("channel", "recipient_id", "address", "language", "batch")
    source = (select(func.cast(correction_id, deliveries.c.announcement_id.type),
                     *(deliveries.c[name] for name in copied),
                     func.cast("queued", deliveries.c.status.type),
                     func.cast(0, deliveries.c.attempts.type),
                     func.cast(utcnow(), deliveries.c.updated_at.type))
              .where(deliveries.c.announcement_id == original_id,
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


def claim(conn: Connection, announcement_id: int, channel: str, *, owner: str, lease: timedelta,
          batch: int | None = None, ids: Sequence[int] | None = None) -> list:
    """Mark pending deliveries ``sending``, leased to ``owner``, and return them: only
    what is claimed is sent.

    A second run of the same job finds nothing left to claim, so a retried job
    never sends twice what the ledger holds as sent. The owner renews the lease
    while it works (``renew``); ``reclaim_abandoned`` takes back what it stops renewing.
    """
    where = [deliveries.c.announcement_id == announcement_id, deliveries.c.channel == channel]
    if batch is not None:
        where.append(deliveries.c.batch == batch)
    if ids is not None:
        where.append(deliveries.c.id.in_(list(ids)))
    claimed = []
    now = utcnow()
    for old in PENDING:
        rows = conn.execute(
            update(deliveries).where(*where, deliveries.c.status == old)
            .values(status="sending", attempts=deliveries.c.attempts + 1, updated_at=now,
                    lease_owner=owner, lease_until=now + lease)
            .returning(deliveries.c.id, deliveries.c.recipient_id, deliveries.c.address,
                       deliveries.c.language, deliveries.c.attempts)).all()
        if rows:
            bump(conn, announcement_id, channel, {old: -len(rows), "sending": len(rows)})
            claimed.extend(rows)
    return sorted(claimed, key=lambda row: row.id)


def renew(conn: Connection, ids: Sequence[int], owner: str, lease: timedelta) -> set[int]:
    """Extend the owner's lease on these rows; returns those it still holds (still
    ``sending`` and still its own), the only ones it may send."""
    if not ids:
        return set()
    return set(conn.execute(update(deliveries)
                            .where(deliveries.c.id.in_(list(ids)),
                                   deliveries.c.status == "sending",
                                   deliveries.c.lease_owner == owner)
                            .values(lease_until=utcnow() + lease)
                            .returning(deliveries.c.id)).scalars())


def release(conn: Connection, ids: Sequence[int], owner: str) -> int:
    """Give up the lease on rows whose outcome this owner does not know (it stopped
    mid-send): the reconciler takes them back as soon as the lease runs out."""
    if not ids:
        return 0
    return conn.execute(update(deliveries)
                        .where(deliveries.c.id.in_(list(ids)), deliveries.c.status == "sending",
                               deliveries.c.lease_owner == owner)
                        .values(lease_owner=None)).rowcount


def settle(conn: Connection, announcement_id: int, channel: str, new: str,
           outcomes: Sequence[tuple[int, str | None, str | None]]) -> int:
    """Record the result of sends this job claimed: (delivery id, provider id, error).

    Only rows still ``sending`` move; a provider callback that already moved a
    row further (delivered before we recorded sent) is left as it is.
    """
    if not outcomes:
        return 0
    now = utcnow()
    conn.execute(update(deliveries).where(deliveries.c.id == bindparam("delivery_id"))
                 .values(provider_id=bindparam("provider_id"),
                         last_error=bindparam("error"), updated_at=now),
                 [{"delivery_id": i, "provider_id": p, "error": _clip(e)} for i, p, e in outcomes])
    ids = [i for i, _, _ in outcomes]
    moved = conn.execute(update(deliveries)
                         .where(deliveries.c.id.in_(ids), deliveries.c.status == "sending")
                         .values(status=new)).rowcount
    bump(conn, announcement_id, channel, {"sending": -moved, new: moved})
    if moved and new in REACHED and channel in PERSONAL_CHANNELS:
        _count_reached(conn, announcement_id, ids, new)
    return moved


def reschedule(conn: Connection, announcement_id: int, channel: str, ids: Sequence[int],
               error: str, *, from_status: str = "sending") -> int:
    """Put deliveries back to ``planned`` for a later try (a transient failure)."""
    if not ids:
        return 0
    moved = conn.execute(update(deliveries)
                         .where(deliveries.c.id.in_(list(ids)),
                                deliveries.c.status == from_status)
                         .values(status="planned", last_error=_clip(error),
                                 updated_at=utcnow())).rowcount
    bump(conn, announcement_id, channel, {from_status: -moved, "planned": moved})
    return moved


def forgive_attempt(conn: Connection, ids: Sequence[int]) -> None:
    """A try that never reached the provider (the channel was paused) does not count."""
    conn.execute(update(deliveries).where(deliveries.c.id.in_(list(ids)), deliveries.c.attempts > 0)
                 .values(attempts=deliveries.c.attempts - 1))


def transition(conn: Connection, delivery_id: int, new: str, *, provider_id: str | None = None,
               error: str | None = None) -> bool:
    """Move one delivery forward (a provider callback); anything else changes nothing.

    The move is conditional on the status just read; when a job moved the row in
    between (a callback racing the job that records ``sent``), it is read again.
    """
    for _ in range(3):
        row = conn.execute(select(deliveries.c.announcement_id, deliveries.c.channel,
                                  deliveries.c.status)
                           .where(deliveries.c.id == delivery_id)).first()
        if row is None or not may_move(row.status, new):
            return False
        values = {"status": new, "updated_at": utcnow()}
        if provider_id:
            values["provider_id"] = provider_id
        if error:
            values["last_error"] = _clip(error)
        moved = conn.execute(update(deliveries)
                             .where(deliveries.c.id == delivery_id,
                                    deliveries.c.status == row.status)
                             .values(**values)).rowcount
        if moved:
            bump(conn, row.announcement_id, row.channel, {row.status: -1, new: 1})
            if new in REACHED and row.channel in PERSONAL_CHANNELS:
                _count_reached(conn, row.announcement_id, [delivery_id], new)
            return True
    return False


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
        _count_reached(conn, announcement_id, moved_ids, new)
    return len(moves)


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
        _add_to(conn, announcement_id, RESENT_KEY, moved)
        taken[(announcement_id, channel)] = moved
    return taken


def _count_reached(conn: Connection, announcement_id: int, ids: Sequence[int], status: str) -> None:
    """Note residents reached for the first time by these deliveries, and count them."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    first_time = len(conn.execute(
        dialect.insert(reached).from_select(
            ["announcement_id", "recipient_id"],
            select(deliveries.c.announcement_id, deliveries.c.recipient_id)
            .where(deliveries.c.id.in_(list(ids)), deliveries.c.status == status))
        .on_conflict_do_nothing().returning(reached.c.recipient_id)).all())
    _add_to(conn, announcement_id, REACHED_KEY, first_time)


def _add_to(conn: Connection, announcement_id: int, key: tuple[str, str], count: int) -> None:
    """Add to one of the announcement's running totals (``REACHED_KEY``, ``RESENT_KEY``)."""
    if not count:
        return
    where = _total_key(announcement_id, key)
    if not conn.execute(select(delivery_counts.c.count).where(*where)).first():
        conn.execute(insert(delivery_counts).values(announcement_id=announcement_id,
                                                    channel=key[0], status=key[1], count=0))
    conn.execute(update(delivery_counts).where(*where)
                 .values(count=delivery_counts.c.count + count))


def _total_key(announcement_id: int, key: tuple[str, str]):
    return (delivery_counts.c.announcement_id == announcement_id,
            delivery_counts.c.channel == key[0], delivery_counts.c.status == key[1])


def reached_count(conn: Connection, announcement_id: int) -> int:
    """Residents any personal channel has reached; a running count, no scan."""
    return conn.execute(select(delivery_counts.c.count)
                        .where(*_total_key(announcement_id, REACHED_KEY))).scalar() or 0


def resent_count(conn: Connection, announcement_id: int) -> int:
    """Deliveries sent again after an unknown outcome: each possibly reached its resident twice."""
    return conn.execute(select(delivery_counts.c.count)
                        .where(*_total_key(announcement_id, RESENT_KEY))).scalar() or 0


def counts(conn: Connection, announcement_id: int) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {}
    for row in conn.execute(select(delivery_counts)
                            .where(delivery_counts.c.announcement_id == announcement_id,
                                   delivery_counts.c.channel != REACHED_KEY[0])):
        result.setdefault(row.channel, {status: 0 for status in STATUSES})[row.status] = row.count
    return result


def pending_batches(conn: Connection, *, planned_before: datetime | None = None) -> list:
    """(announcement, channel, batch) groups that still have pending deliveries."""
    query = (select(deliveries.c.announcement_id, deliveries.c.channel, deliveries.c.batch,
                    func.count().label("pending"))
             .where(deliveries.c.status.in_(PENDING))
             .group_by(deliveries.c.announcement_id, deliveries.c.channel, deliveries.c.batch))
    if planned_before is not None:
        query = query.where(and_(deliveries.c.updated_at < planned_before))
    return conn.execute(query).all()


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:500]
