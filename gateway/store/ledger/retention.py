"""Retention (PIPL: personal data kept no longer than needed): a finished notice's deliveries
stop saying who they went to, while every count the reports read stays as it was.

What goes: each delivery's address, provider id and last error; a personal delivery's
resident (its ``recipient_id`` becomes the negative of its own id: unique, naming no one);
each ``reached`` row's resident (numbered -1, -2, … in an order that says nothing). What
stays: statuses, channels, languages, batches, attempts and times (the progress history is
drawn from them), ``delivery_counts`` whole, and the figures the caller counted while the rows
still named residents (``retained_figures``: not reached, unconfirmed, the disclosure report),
which the status and the report read from then on. Loudspeakers and group robots keep their
device (a place, not a person).
"""
from __future__ import annotations

import json

from sqlalchemy import Connection, bindparam, func, insert, select, update

from channels.registry import PLACE_CHANNELS
from gateway.store.db import utcnow
from gateway.store.schema import deliveries, reached, retained_figures


def anonymise(conn: Connection, announcement_id: int, *, not_reached: int, unconfirmed: int,
              disclosure: dict) -> dict[str, int]:
    """Delete the announcement's delivery details, keeping the figures given; once only
    (an announcement already anonymised is left alone: returns zeros)."""
    if retained(conn, announcement_id) is not None:
        return {"deliveries": 0, "reached": 0}
    conn.execute(insert(retained_figures).values(
        announcement_id=announcement_id, anonymised_at=utcnow(), not_reached=not_reached,
        unconfirmed=unconfirmed, disclosure=json.dumps(disclosure, ensure_ascii=False)))
    ours = deliveries.c.announcement_id == announcement_id
    conn.execute(update(deliveries).where(ours, deliveries.c.channel.notin_(PLACE_CHANNELS))
                 .values(recipient_id=-deliveries.c.id))
    # The provider id empty, not NULL: a late callback may speak for a row with no provider id
    # yet (ledger.provider_matches), and must never move one whose details are gone.
    emptied = conn.execute(update(deliveries).where(ours)
                           .values(address="", provider_id="", last_error=None,
                                   lease_owner=None)).rowcount
    people = [row.recipient_id for row in conn.execute(
        select(reached.c.recipient_id)
        .where(reached.c.announcement_id == announcement_id, reached.c.recipient_id > 0)
        .order_by(func.random()))]
    if people:
        conn.execute(update(reached).where(reached.c.announcement_id == announcement_id,
                                           reached.c.recipient_id == bindparam("resident"))
                     .values(recipient_id=bindparam("number")),
                     [{"resident": resident, "number": -number}
                      for number, resident in enumerate(people, start=1)])
    return {"deliveries": emptied, "reached": len(people)}


def retained(conn: Connection, announcement_id: int):
    """The figures kept when the announcement's details were deleted (a row), or None."""
    return conn.execute(select(retained_figures)
                        .where(retained_figures.c.announcement_id == announcement_id)).first()


def retained_disclosure(row) -> dict:
    return json.loads(row.disclosure)
