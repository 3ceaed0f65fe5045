"""Helpers for testing gateway/delivery's modules one by one, on the county of
tests/gateway/conftest.py (its ``app``, ``county`` and ``api`` fixtures reach this folder).

Announcements are made and approved with ``lifecycle`` itself and planned with
``planner.plan``; no job runs unless a test runs it, so each test sees the
ledger exactly as the module under test leaves it.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from rq.job import Job
from sqlalchemy import select, update

from channels.base import Channel, ChannelError, Outgoing, Receipt
from gateway.delivery import lifecycle, planner, queues
from gateway.store import accounts, ledger
from gateway.store.db import utcnow
from gateway.store.schema import announcements, deliveries
from messages.announcement import parse_announcement
from tests.gateway.conftest import announcement

SENDER = "tongbao@test.example.gov.cn"


def user(conn, name: str):
    return accounts.find_user(conn, name)


def create(app, by: str = "author", **fields) -> int:
    """An announcement awaiting approval (or a draft), as ``by`` wrote it."""
    with app.extensions["engine"].begin() as conn:
        return lifecycle.create(conn, parse_announcement(announcement(**fields)), user(conn, by),
                                sender=SENDER)


def released(app, **fields) -> int:
    """An announcement the author wrote and the approver approved; not yet planned."""
    announcement_id = create(app, **fields)
    with app.extensions["engine"].begin() as conn:
        lifecycle.approve(conn, announcement_id, user(conn, "approver"))
    return announcement_id


def plan(app, announcement_id: int) -> dict[str, int]:
    with app.app_context():
        return planner.plan(app.extensions["engine"], announcement_id, app.extensions["policy"])


def planned(app, **fields) -> int:
    """Released and planned: its deliveries are queued in the ledger, none sent."""
    announcement_id = released(app, **fields)
    plan(app, announcement_id)
    return announcement_id


def row_of(conn, announcement_id: int):
    return conn.execute(select(announcements).where(announcements.c.id == announcement_id)).one()


LEDGER_COLUMNS = ("id", "channel", "recipient_id", "address", "language", "batch", "status",
                  "attempts", "provider_id", "last_error")


def ledger_rows(app, announcement_id: int) -> list:
    """The announcement's deliveries in id order (what tests look at, not the timestamps)."""
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(*(deliveries.c[name] for name in LEDGER_COLUMNS))
                            .where(deliveries.c.announcement_id == announcement_id)
                            .order_by(deliveries.c.id)).all()


def by_address(app, announcement_id: int) -> dict[tuple[str, str], object]:
    """(channel, address) -> the delivery row."""
    return {(row.channel, row.address): row for row in ledger_rows(app, announcement_id)}


def hand_over(app, announcement_id: int, ids: Sequence[int], status: str = "sent") -> None:
    """Leave these pending rows as a delivery job would have: ``sending`` (claimed, no
    answer yet), ``sent`` or ``failed``, one more attempt made; the running counts follow."""
    with app.extensions["engine"].begin() as conn:
        pending = conn.execute(select(deliveries.c.id, deliveries.c.channel, deliveries.c.status)
                               .where(deliveries.c.id.in_(list(ids)),
                                      deliveries.c.status.in_(ledger.PENDING))).all()
        conn.execute(update(deliveries).where(deliveries.c.id.in_([row.id for row in pending]))
                     .values(status=status, attempts=deliveries.c.attempts + 1,
                             provider_id=f"P-{status}", updated_at=utcnow()))
        for (channel, old), count in Counter((row.channel, row.status) for row in pending).items():
            ledger.bump(conn, announcement_id, channel, {old: -count, status: count})


def reach(app, ids: Sequence[int], status: str = "delivered") -> None:
    """A provider's callback: these handed-over rows were delivered (or confirmed)."""
    with app.extensions["engine"].begin() as conn:
        for delivery_id in ids:
            assert ledger.transition(conn, delivery_id, status)


def queued_batches(app, channel: str) -> set[tuple[int, int]]:
    """(announcement, batch) of the delivery jobs waiting in a channel's queue."""
    with app.app_context():
        return {(job.args[0], job.args[2]) for job in queues.queue(channel).jobs
                if job.func_name.endswith("deliver_batch")}


def scheduled_batches(app, channel: str) -> set[tuple[int, int]]:
    """(announcement, batch) of the delivery jobs rq's scheduler holds for a channel (retries)."""
    with app.app_context():
        queue = queues.queue(channel)
        held = Job.fetch_many(queue.scheduled_job_registry.get_job_ids(),
                              connection=queue.connection)
        return {(job.args[0], job.args[2]) for job in held if job is not None}


class Scripted(Channel):
    """A provider whose answer per address is scripted: a ``ChannelError`` to raise,
    a ``Receipt`` status, or by default ``sent``. Records every message it is given."""

    name = "scripted"

    def __init__(self, answers: dict[str, object] | None = None):
        super().__init__({})
        self.answers = dict(answers or {})
        self.sent: list[Outgoing] = []

    def send(self, message: Outgoing) -> Receipt:
        self.sent.append(message)
        answer = self.answers.get(message.address, "sent")
        if isinstance(answer, ChannelError):
            raise answer
        return Receipt(provider_id=f"P{message.delivery_id}", status=answer)

    def addresses(self) -> list[str]:
        return [message.address for message in self.sent]


def use_provider(app, channel: str, provider: Channel) -> Channel:
    """Make ``provider`` the sender of ``channel`` in this app's jobs."""
    app.extensions.setdefault("senders", {})[channel] = provider
    return provider
