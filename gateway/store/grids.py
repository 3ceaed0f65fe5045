"""Grids (网格), their grid workers, and the taps grid workers make at residents' doors.

A grid is an area below a village with a 15-digit code (``audiences.areas.normalize_grid``);
residents carry theirs (``residents.grid``, from the roster). A user with the role
``grid_worker`` works the grids they are assigned to here and sees only those grids'
residents. Each tap is kept once per tap id (``grid_visits``), so a phone sending a tap
again after a lost answer changes nothing. What a tap does to deliveries is the ledger's
(``ledger.record_in_person``); the pipeline's ``gateway.delivery.fieldwork`` ties them.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from audiences import areas as area_codes
from audiences.roster_cells import phone_number
from gateway.store import audit
from gateway.store.accounts import GRID_WORKER, find_user
from gateway.store.db import as_utc, utcnow
from gateway.store.schema import (areas, grid_nudges, grid_visits, grid_workers, grids, residents,
                                  users)

#: What a grid worker found at the door: told in person (a delivery), or an attempt.
TOLD = "told"
NOT_HOME = "not_home"
MOVED = "moved"  # moved away, or the roster's data is wrong: for the admin's review
REFUSED = "refused"
OUTCOMES = (TOLD, NOT_HOME, MOVED, REFUSED)
NOTE_MAX_LENGTH = 300
TAP_ID_MAX_LENGTH = 64


class GridError(ValueError):
    """A change the registry refuses; ``reason`` (a key of ``REASONS``) and ``details`` let the
    console say it in the user's language."""

    REASONS = {
        "bad_name": "a grid needs a name of 1 to {most} characters",
        "no_village": "village {village} is not in the area registry",
        "no_grid": "grid {grid} is not in the grid registry",
        "no_user": "there is no user named {user!r}",
        "not_grid_worker": "{user} is a {role}, not a grid_worker",
        "bad_phone": "{phone!r} is not a valid phone number",
    }

    def __init__(self, reason: str, **details):
        super().__init__(self.REASONS[reason].format(**details))
        self.reason = reason
        self.details = details


def add_grid(conn: Connection, code: str, name: str, actor: str) -> str:
    """Register (or rename) a grid in a registered village; returns its normalised code."""
    code = area_codes.normalize_grid(code)
    name = name.strip()
    if not name or len(name) > area_codes.AREA_NAME_MAX_LENGTH:
        raise GridError("bad_name", most=area_codes.AREA_NAME_MAX_LENGTH)
    village = area_codes.village_of_grid(code)
    if conn.execute(select(areas.c.code).where(areas.c.code == village)).first() is None:
        raise GridError("no_village", village=village)
    if conn.execute(update(grids).where(grids.c.code == code).values(name=name)).rowcount == 0:
        conn.execute(insert(grids).values(code=code, name=name))
    audit.record(conn, actor, "grid", f"grid:{code}", {"name": name})
    return code


def assign(conn: Connection, grid_code: str, user_name: str, actor: str) -> None:
    """Make a grid worker work this grid (a grid may have several, a worker several grids)."""
    grid_code, user = _grid_and_worker(conn, grid_code, user_name)
    if conn.execute(select(grid_workers).where(grid_workers.c.grid_code == grid_code,
                                               grid_workers.c.user_id == user.id)).first():
        return
    conn.execute(insert(grid_workers).values(grid_code=grid_code, user_id=user.id))
    audit.record(conn, actor, "assign", f"grid:{grid_code}", {"worker": user.name})


def unassign(conn: Connection, grid_code: str, user_name: str, actor: str) -> None:
    grid_code, user = _grid_and_worker(conn, grid_code, user_name)
    if conn.execute(delete(grid_workers).where(grid_workers.c.grid_code == grid_code,
                                               grid_workers.c.user_id == user.id)).rowcount:
        audit.record(conn, actor, "unassign", f"grid:{grid_code}", {"worker": user.name})


def set_phone(conn: Connection, user_name: str, phone: str, actor: str) -> str | None:
    """Give a grid worker the mobile their nudges go to (E.164); an empty ``phone`` removes it."""
    user = _worker(conn, user_name)
    try:
        number = phone_number(phone)
    except ValueError:
        raise GridError("bad_phone", phone=phone.strip()) from None
    conn.execute(update(users).where(users.c.id == user.id).values(phone=number))
    audit.record(conn, actor, "phone", f"user:{user.name}", {"set": number is not None})
    return number


def _grid_and_worker(conn: Connection, grid_code: str, user_name: str):
    grid_code = area_codes.normalize_grid(grid_code)
    if conn.execute(select(grids.c.code).where(grids.c.code == grid_code)).first() is None:
        raise GridError("no_grid", grid=grid_code)
    return grid_code, _worker(conn, user_name)


def _worker(conn: Connection, user_name: str):
    user = find_user(conn, user_name.strip())
    if user is None:
        raise GridError("no_user", user=user_name.strip())
    if user.role != GRID_WORKER:
        raise GridError("not_grid_worker", user=user.name, role=user.role)
    return user


def grids_of(conn: Connection, user_id: int) -> list[str]:
    """The codes of the grids a user works."""
    return list(conn.execute(select(grid_workers.c.grid_code)
                             .where(grid_workers.c.user_id == user_id)
                             .order_by(grid_workers.c.grid_code)).scalars())


def worked_grids(conn: Connection) -> frozenset[str]:
    """The codes of the grids that have a grid worker."""
    return frozenset(conn.execute(select(grid_workers.c.grid_code).distinct()).scalars())


def names(conn: Connection, codes: list[str]) -> dict[str, str]:
    """grid code → its name, for these grids."""
    return dict(conn.execute(select(grids.c.code, grids.c.name).where(grids.c.code.in_(codes))).all())


def registry(conn: Connection) -> list[dict]:
    """Every grid with its name, village, workers and residents on the roster, by code."""
    workers: dict[str, list[str]] = {}
    for row in conn.execute(select(grid_workers.c.grid_code, users.c.name)
                            .join(users, users.c.id == grid_workers.c.user_id)
                            .order_by(users.c.name)):
        workers.setdefault(row.grid_code, []).append(row.name)
    counts = dict(conn.execute(select(residents.c.grid, func.count())
                               .where(residents.c.grid.is_not(None),
                                      residents.c.retired_at.is_(None))
                               .group_by(residents.c.grid)).all())
    return [{"code": row.code, "name": row.name, "village": area_codes.village_of_grid(row.code),
             "workers": workers.get(row.code, []), "residents": counts.get(row.code, 0)}
            for row in conn.execute(select(grids).order_by(grids.c.code))]


def grid_worker_names(conn: Connection) -> list[str]:
    return list(conn.execute(select(users.c.name).where(users.c.role == GRID_WORKER)
                             .order_by(users.c.name)).scalars())


def record_tap(conn: Connection, *, tap_id: str, announcement_id: int, resident_id: int,
               user_id: int, outcome: str, note: str = "",
               tapped_at: datetime | None = None) -> bool:
    """Keep a tap; False when its id was kept before (a resend): the caller then does nothing."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    kept = conn.execute(dialect.insert(grid_visits).values(
        tap_id=tap_id, announcement_id=announcement_id, resident_id=resident_id, user_id=user_id,
        outcome=outcome, note=note[:NOTE_MAX_LENGTH], tapped_at=tapped_at, at=utcnow())
        .on_conflict_do_nothing().returning(grid_visits.c.id)).first()
    return kept is not None


def flag_for_review(conn: Connection, resident_id: int, note: str) -> None:
    """A grid worker found the resident moved or their data wrong: the admin reviews the row
    (an edit or a roster import that lists them clears the flag)."""
    conn.execute(update(residents).where(residents.c.id == resident_id)
                 .values(review_note=note[:NOTE_MAX_LENGTH] or MOVED))


def last_visits(conn: Connection, announcement_id: int) -> dict[str, datetime]:
    """grid code → when its last tap for this notice was recorded."""
    return {grid: as_utc(at) for grid, at in conn.execute(
        select(residents.c.grid, func.max(grid_visits.c.at))
        .join(residents, residents.c.id == grid_visits.c.resident_id)
        .where(grid_visits.c.announcement_id == announcement_id, residents.c.grid.is_not(None))
        .group_by(residents.c.grid)).all()}


def visits(conn: Connection, announcement_id: int, resident_ids: list[int]) -> dict[int, list[dict]]:
    """resident id → the taps made at their door for this notice, oldest first."""
    found: dict[int, list[dict]] = {}
    if not resident_ids:
        return found
    for row in conn.execute(select(grid_visits.c.resident_id, grid_visits.c.outcome,
                                   grid_visits.c.note, grid_visits.c.at, users.c.name)
                            .join(users, users.c.id == grid_visits.c.user_id)
                            .where(grid_visits.c.announcement_id == announcement_id,
                                   grid_visits.c.resident_id.in_(resident_ids))
                            .order_by(grid_visits.c.id)):
        found.setdefault(row.resident_id, []).append(
            {"outcome": row.outcome, "note": row.note, "worker": row.name,
             "at": row.at.isoformat() if row.at else None})
    return found


def workers_with_phones(conn: Connection, grid_codes: list[str]) -> list:
    """(grid_code, user_id, name, phone) of the workers of these grids who have a phone."""
    return conn.execute(select(grid_workers.c.grid_code, users.c.id.label("user_id"), users.c.name,
                               users.c.phone)
                        .join(users, users.c.id == grid_workers.c.user_id)
                        .where(grid_workers.c.grid_code.in_(grid_codes), users.c.phone.is_not(None))
                        .order_by(grid_workers.c.grid_code, users.c.id)).all()


def any_worker_with_phone(conn: Connection) -> bool:
    return conn.execute(select(grid_workers.c.user_id)
                        .join(users, users.c.id == grid_workers.c.user_id)
                        .where(users.c.phone.is_not(None)).limit(1)).first() is not None


def mark_nudged(conn: Connection, announcement_id: int, grid_code: str, user_id: int) -> bool:
    """Mark (notice, grid, worker) nudged; False when it was before (by this or another host)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    kept = conn.execute(dialect.insert(grid_nudges).values(
        announcement_id=announcement_id, grid_code=grid_code, user_id=user_id, at=utcnow())
        .on_conflict_do_nothing().returning(grid_nudges.c.user_id)).first()
    return kept is not None


def unmark_nudged(conn: Connection, announcement_id: int, grid_code: str, user_id: int) -> None:
    """The nudge's SMS failed: the next pass tries again."""
    conn.execute(delete(grid_nudges).where(grid_nudges.c.announcement_id == announcement_id,
                                           grid_nudges.c.grid_code == grid_code,
                                           grid_nudges.c.user_id == user_id))


def last_nudges(conn: Connection, announcement_id: int) -> dict[str, datetime]:
    """grid code → when its workers were last nudged for this notice."""
    return {grid: as_utc(at) for grid, at in conn.execute(
        select(grid_nudges.c.grid_code, func.max(grid_nudges.c.at))
        .where(grid_nudges.c.announcement_id == announcement_id)
        .group_by(grid_nudges.c.grid_code)).all()}


def forget_visits(conn: Connection, announcement_id: int) -> int:
    """Retention: the taps at residents' doors for a notice long finished (who, what was found,
    the notes) go; a resident told in person stays counted by the ledger."""
    return conn.execute(delete(grid_visits)
                        .where(grid_visits.c.announcement_id == announcement_id)).rowcount
