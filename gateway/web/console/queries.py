"""Read-only questions the console's pages ask of the database.

The rules (who may do what, what goes to whom) live in the service modules;
these are only the lists and tallies the pages show.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, case, func, or_, select

from audiences import areas as area_codes
from gateway.delivery import lifecycle
from gateway.store import ledger
from gateway.store.db import as_utc
from gateway.store.schema import (announcements, areas, audit_log, deliveries, devices, residents,
                            users)


@dataclass
class AreaNode:
    code: str
    name: str
    residents: int = 0
    children: list["AreaNode"] = field(default_factory=list)


def area_tree(conn: Connection) -> list[AreaNode]:
    """The registered areas as a tree (county → town → village), each with its resident count."""
    nodes = {row.code: AreaNode(row.code, row.name)
             for row in conn.execute(select(areas).order_by(areas.c.code))}
    for code, count in conn.execute(select(residents.c.area_code, func.count())
                                    .group_by(residents.c.area_code)):
        while code is not None:
            if code in nodes:
                nodes[code].residents += count
            code = area_codes.parent(code)
    roots = []
    for node in nodes.values():
        parent = _registered_parent(node.code, nodes)
        (nodes[parent].children if parent else roots).append(node)
    return roots


def _registered_parent(code: str, nodes: dict) -> str | None:
    parent = area_codes.parent(code)
    while parent is not None and parent not in nodes:
        parent = area_codes.parent(parent)
    return parent


def area_names(conn: Connection) -> dict[str, str]:
    return {row.code: row.name for row in conn.execute(select(areas.c.code, areas.c.name))}


def user_names(conn: Connection) -> dict[int, str]:
    return {row.id: row.name for row in conn.execute(select(users.c.id, users.c.name))}


def recent_announcements(conn: Connection, limit: int = 50) -> list:
    return conn.execute(select(announcements).order_by(announcements.c.id.desc())
                        .limit(limit)).all()


def latest_correction(conn: Connection, announcement_id: int) -> int | None:
    """The newest released withdrawal notice or update of the announcement (none awaiting)."""
    return conn.execute(select(func.max(announcements.c.id))
                        .where(announcements.c.supersedes_id == announcement_id,
                               announcements.c.state.in_(lifecycle.RELEASED_STATES))).scalar_one()


def failures(conn: Connection, announcement_id: int, failed_total: int, limit: int = 100) -> list:
    """Failed deliveries with the provider's reason: the first ``limit``, in ledger order.

    ``failed_total`` is the running count the caller already has; the list is
    read only when there is something to list, from an index of failed rows,
    so polling a large announcement never scans its ledger.
    """
    if not failed_total:
        return []
    return conn.execute(failed_rows(announcement_id, limit)).all()


def failed_rows(announcement_id: int, limit: int):
    """The query for the failure list; it reads the partial index of failed rows."""
    return (select(deliveries.c.channel, deliveries.c.address, deliveries.c.attempts,
                   deliveries.c.last_error, deliveries.c.updated_at)
            .where(deliveries.c.announcement_id == announcement_id,
                   deliveries.c.status == "failed")
            .limit(limit))


def loudspeakers_version(conn: Connection, announcement_id: int) -> str:
    """What ``loudspeakers_by_village`` depends on in the ledger, in one pass over the notice's
    loudspeaker rows without the villages' join and grouping: it changes whenever a row's status
    does (every move sets ``updated_at``; loudspeaker rows also move back, to be sent again), so
    the progress page's poll resends the table only when it changed."""
    row = conn.execute(
        select(func.count(), *_loudspeaker_tallies(), func.max(deliveries.c.updated_at))
        .where(deliveries.c.announcement_id == announcement_id,
               deliveries.c.channel == "loudspeaker")).one()
    *counts, changed = row
    stamp = as_utc(changed).isoformat() if changed else ""
    return "-".join([*(str(int(n or 0)) for n in counts), stamp])


def _loudspeaker_tallies() -> tuple:
    """Loudspeaker rows that received, played (the row is confirmed) and failed."""
    return (func.sum(case((deliveries.c.status.in_(ledger.REACHED), 1), else_=0)),
            func.sum(case((deliveries.c.status == "confirmed", 1), else_=0)),
            func.sum(case((deliveries.c.status == "failed", 1), else_=0)))


def loudspeakers_by_village(conn: Connection, announcement_id: int) -> list[dict]:
    """Per village (code and name): its loudspeakers for this announcement, how many received
    it and how many played it (the device said ``played``: the row is confirmed, as
    ``disclosure`` counts it), and when the last of them answered."""
    received, played, failed = _loudspeaker_tallies()
    answered = func.max(case((deliveries.c.status.in_(ledger.REACHED), deliveries.c.updated_at)))
    rows = conn.execute(
        select(devices.c.area_code, areas.c.name, func.count().label("speakers"),
               received.label("received"), played.label("played"), failed.label("failed"),
               answered.label("answered_at"))
        .join(devices, devices.c.id == deliveries.c.recipient_id)
        .outerjoin(areas, areas.c.code == devices.c.area_code)
        .where(deliveries.c.announcement_id == announcement_id,
               deliveries.c.channel == "loudspeaker")
        .group_by(devices.c.area_code, areas.c.name).order_by(devices.c.area_code)).all()
    return [{"area_code": row.area_code, "name": row.name or "", "speakers": row.speakers,
             "received": int(row.received or 0), "played": int(row.played or 0),
             "failed": int(row.failed or 0),
             "answered_at": as_utc(row.answered_at).isoformat() if row.answered_at else None}
            for row in rows]


def search_residents(conn: Connection, text: str, *, limit: int, offset: int) -> tuple[list, int]:
    """Residents whose name, phone or area code contains ``text``."""
    query = select(residents)
    if text:
        pattern = f"%{text}%"
        query = query.where(or_(residents.c.name.like(pattern), residents.c.phone.like(pattern),
                                residents.c.area_code.like(f"{text}%")))
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(query.order_by(residents.c.area_code, residents.c.id)
                        .limit(limit).offset(offset)).all()
    return rows, total


def get_resident(conn: Connection, resident_id: int):
    return conn.execute(select(residents).where(residents.c.id == resident_id)).first()


def all_devices(conn: Connection) -> list:
    return conn.execute(select(devices).order_by(devices.c.area_code, devices.c.device_id)).all()


def audit_entries(conn: Connection, *, actor: str, action: str, limit: int,
                  offset: int) -> tuple[list, int]:
    query = select(audit_log)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if action:
        query = query.where(audit_log.c.action == action)
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(query.order_by(audit_log.c.id.desc()).limit(limit).offset(offset)).all()
    return rows, total
