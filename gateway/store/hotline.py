"""The hotline's record: which calls heard which notice, the one writer of ``hotline_calls``.

A call counts once per notice however often the caller repeats it. Only a caller on the
roster is named (by resident id); nobody else's number is kept. Retention
(``gateway.delivery.retention``) takes the names away too (``forget_callers``).
"""
from __future__ import annotations

from sqlalchemy import Connection, String, cast, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.db import utcnow
from gateway.store.schema import hotline_calls

#: A forgotten call's id: this, then the row's own number (unique, naming no call).
FORGOTTEN = "forgotten-"


def record_heard(conn: Connection, call_sid: str, announcement_id: int, area_code: str,
                 resident_id: int | None) -> bool:
    """The call began to hear the notice; returns whether that is new for this call."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return conn.execute(dialect.insert(hotline_calls).values(
        call_sid=call_sid[:64], announcement_id=announcement_id, area_code=area_code,
        resident_id=resident_id, heard_at=utcnow()).on_conflict_do_nothing()).rowcount == 1


def record_confirmed(conn: Connection, call_sid: str, announcement_id: int) -> None:
    """The caller pressed 1 after the notice (the first press is the one kept)."""
    conn.execute(update(hotline_calls).where(hotline_calls.c.call_sid == call_sid[:64],
                                             hotline_calls.c.announcement_id == announcement_id,
                                             hotline_calls.c.confirmed_at.is_(None))
                 .values(confirmed_at=utcnow()))


def forget_callers(conn: Connection, announcement_id: int) -> int:
    """Retention: the notice's calls stay counted, but no longer say who called (the resident,
    or Twilio's call id, under which Twilio keeps the number); returns how many rows lost them
    (none the second time)."""
    return conn.execute(update(hotline_calls).where(
        hotline_calls.c.announcement_id == announcement_id,
        or_(hotline_calls.c.resident_id.is_not(None),
            hotline_calls.c.call_sid.not_like(f"{FORGOTTEN}%")))
        .values(resident_id=None,
                call_sid=literal(FORGOTTEN) + cast(hotline_calls.c.id, String))).rowcount


def listeners(conn: Connection, announcement_id: int) -> int:
    """How many calls to the hotline heard the notice."""
    return conn.execute(select(func.count()).select_from(hotline_calls).where(
        hotline_calls.c.announcement_id == announcement_id)).scalar_one()
