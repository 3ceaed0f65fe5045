"""Self-registrations (/join): what a resident gave, the consents they gave, review by an admin,
and their own later changes or deletion. Residents' rows are written by ``gateway.store.roster``.

A registration whose phone an approved roster already holds adds no resident (that one is
reached already); otherwise it adds one pending review. Approval updates the roster's
resident with that phone, or else approves the pending one: never a duplicate.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, insert, or_, select, update

from gateway.store import audit, roster
from gateway.store.db import utcnow
from gateway.store.ledger.erasure import anonymise_recipient
from gateway.store.schema import inbound_messages, residents, self_registrations

#: What each consent is for; ``contact`` is required, each need's is separate and optional.
PURPOSES = ("contact", *roster.NEED_COLUMNS)
NEEDS = tuple(roster.NEED_COLUMNS)
#: The actor of changes a resident makes themselves (the audit log holds no phone number).
SELF = "self-service"


class ReviewError(LookupError):
    pass


@dataclass(frozen=True)
class Registration:
    """A resident's entries, checked; ``needs`` only those with their own consent."""
    area_code: str
    name: str
    phone: str
    language: str
    uses_wechat: bool
    needs: tuple[str, ...] = ()
    consents: tuple[str, ...] = field(default=("contact",))


def submit(conn: Connection, registration: Registration) -> int:
    """Record a verified registration, pending review; a pending one for the same phone is
    replaced. Returns its id."""
    now = utcnow().isoformat()
    for old in conn.execute(select(self_registrations.c.id).where(
            self_registrations.c.phone == registration.phone,
            self_registrations.c.status == "pending")).scalars().all():
        _discard(conn, old)
    resident_id = None
    if roster.on_roster_by_phone(conn, registration.phone) is None:
        resident_id = roster.add_pending_resident(
            conn, name=registration.name, phone=registration.phone,
            area_code=registration.area_code, language=registration.language)
    new_id = conn.execute(insert(self_registrations).values(
        area_code=registration.area_code, resident_id=resident_id, name=registration.name,
        phone=registration.phone, language=registration.language,
        uses_wechat=registration.uses_wechat, needs=json.dumps(list(registration.needs)),
        consents=json.dumps({purpose: now for purpose in registration.consents}),
        status="pending", created_at=utcnow())).inserted_primary_key[0]
    audit.record(conn, SELF, "register", f"registration:{new_id}",
                 {"area": registration.area_code, "consents": list(registration.consents),
                  "resident": resident_id})
    return new_id


def pending(conn: Connection, limit: int = 200) -> list[dict]:
    """Registrations awaiting review, oldest first, each with the roster's resident it would
    update (matched by phone), if any."""
    found = []
    for row in conn.execute(select(self_registrations).where(self_registrations.c.status == "pending")
                            .order_by(self_registrations.c.id).limit(limit)):
        found.append({"registration": row, "needs": json.loads(row.needs),
                      "match": roster.on_roster_by_phone(conn, row.phone)})
    return found


def approve(conn: Connection, registration_id: int, actor: str) -> int:
    """Put a pending registration on the roster; returns the resident it updated or approved."""
    row = _pending(conn, registration_id)
    match = roster.on_roster_by_phone(conn, row.phone)
    if match is not None:
        resident_id = match.id
        if row.resident_id is not None and row.resident_id != match.id:
            _erase(conn, row.resident_id)  # a pending twin: the roster's resident goes on
    elif row.resident_id is not None:
        resident_id = row.resident_id
    else:  # the roster's resident was deleted since
        resident_id = roster.add_pending_resident(conn, name=row.name, phone=row.phone,
                                                  area_code=row.area_code, language=row.language)
    roster.apply_self_registration(conn, resident_id, name=row.name, area_code=row.area_code,
                                   language=row.language, needs=json.loads(row.needs))
    _decide(conn, registration_id, "approved", actor, resident_id)
    audit.record(conn, actor, "approve", f"registration:{registration_id}",
                 {"resident": resident_id, "merged": match is not None})
    return resident_id


def reject(conn: Connection, registration_id: int, actor: str) -> None:
    """Not a resident of that village (or not a person): the pending resident is erased."""
    row = _pending(conn, registration_id)
    if row.resident_id is not None:
        _erase(conn, row.resident_id)
    _decide(conn, registration_id, "rejected", actor, None)
    audit.record(conn, actor, "reject", f"registration:{registration_id}", "")


def held_about(conn: Connection, phone: str) -> dict:
    """Everything held about a phone's holder: residents with that number, registrations."""
    return {"residents": conn.execute(select(residents).where(residents.c.phone == phone,
                                                              residents.c.retired_at.is_(None))
                                      .order_by(residents.c.id)).all(),
            "registrations": conn.execute(select(self_registrations)
                                          .where(self_registrations.c.phone == phone)
                                          .order_by(self_registrations.c.id)).all()}


def shown_to_resident(conn: Connection, phone: str) -> dict:
    """``held_about``, as the page shows it to the phone's holder (audited: a personal-data view)."""
    held = held_about(conn, phone)
    audit.record(conn, SELF, "self_view", "registrations",
                 {"residents": [row.id for row in held["residents"]],
                  "registrations": [row.id for row in held["registrations"]]})
    return held


def change(conn: Connection, phone: str, resident_id: int, *, language: str,
           needs: tuple[str, ...], opt_out: tuple[str, ...]) -> None:
    """A resident's own change (verified by a code to ``phone``): language, needs (each
    given with its consent; one left out is withdrawn), channels opted out of."""
    if resident_id not in {row.id for row in held_about(conn, phone)["residents"]}:
        raise ReviewError(f"resident {resident_id} does not have that phone number")
    roster.set_preferences(conn, resident_id, language=language, needs=needs, opt_out=opt_out)
    now = utcnow().isoformat()
    for row in held_about(conn, phone)["registrations"]:
        consents = {purpose: given for purpose, given in json.loads(row.consents).items()
                    if purpose == "contact" or purpose in needs}
        consents.update({need: consents.get(need, now) for need in needs})
        conn.execute(update(self_registrations).where(self_registrations.c.id == row.id)
                     .values(consents=json.dumps(consents), needs=json.dumps(list(needs)),
                             language=language))
    audit.record(conn, SELF, "self_change", f"resident:{resident_id}",
                 {"language": language, "needs": list(needs), "opt_out": list(opt_out)})


def erase(conn: Connection, phone: str) -> int:
    """Delete everything held about a phone's holder (their rows, registrations and SMS
    replies); returns the residents erased. Their deliveries stay counted, anonymised by the
    ledger."""
    held = held_about(conn, phone)
    ids = [row.id for row in held["residents"]]
    conn.execute(delete(inbound_messages).where(or_(inbound_messages.c.address == phone,
                                                    inbound_messages.c.resident_id.in_(ids))))
    for resident_id in ids:
        _erase(conn, resident_id)
        audit.record(conn, SELF, "erase", f"resident:{resident_id}", "")
    for row in held["registrations"]:  # a pending one's resident has the phone: erased above
        conn.execute(delete(self_registrations).where(self_registrations.c.id == row.id))
        audit.record(conn, SELF, "erase", f"registration:{row.id}", "")
    return len(held["residents"])


def _pending(conn: Connection, registration_id: int):
    row = conn.execute(select(self_registrations).where(
        self_registrations.c.id == registration_id)).first()
    if row is None or row.status != "pending":
        raise ReviewError(f"there is no pending registration {registration_id}")
    return row


def _decide(conn: Connection, registration_id: int, status: str, actor: str,
            resident_id: int | None) -> None:
    conn.execute(update(self_registrations).where(self_registrations.c.id == registration_id)
                 .values(status=status, decided_at=utcnow(), decided_by=actor,
                         resident_id=resident_id))


def _discard(conn: Connection, registration_id: int) -> None:
    """A pending registration replaced by a newer one for the same phone."""
    row = _pending(conn, registration_id)
    if row.resident_id is not None:
        _erase(conn, row.resident_id)
    conn.execute(delete(self_registrations).where(self_registrations.c.id == registration_id))



def _erase(conn: Connection, resident_id: int) -> None:
    """The resident row keeps nothing personal, nor do the deliveries naming it."""
    roster.erase_resident(conn, resident_id)
    anonymise_recipient(conn, resident_id)
