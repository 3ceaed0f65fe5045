"""Imports into the registry (areas, residents and loudspeaker devices) and resident edits.

Imports are all or nothing, in one transaction: a roster's rows are written
as they are checked, 2,000 at a time (a county's million residents are never
held in memory), and a file with any error rolls everything back. On SQLite
that transaction holds the one write lock while the file is read too: reading
is a quarter to two fifths of a county's import (bench/roster_import.py).
A roster updates the residents it matches by phone (or else openid), adds the
others and, with ``replace_area``, retires the area's residents it no longer
lists: their rows stay, so deliveries naming them stay whole.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, NamedTuple

from sqlalchemy import Connection, and_, bindparam, case, insert, or_, select, text, update

from audiences import areas as area_codes
from audiences.areas import CsvSource, read_area_csv
from audiences.residents import ResidentProfile, Roster, parse_resident
from channels.loudspeaker.protocol import SigningKey, check_device_id
from gateway.store import audit
from gateway.store.db import utcnow
from gateway.store.schema import areas, devices, grids, group_robots, residents

CHUNK = 2000
#: An import adding this many residents refreshes PostgreSQL's statistics of the table.
ANALYZE_AFTER_ADDING = 10_000


class DeviceError(ValueError):
    pass


def beneath(column, codes: list[str]):
    """A SQL condition matching every area code beneath the given codes.

    A range rather than LIKE, so both SQLite and PostgreSQL use the index."""
    conditions = []
    for code in codes:
        prefix = area_codes.prefix(code)
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        conditions.append(and_(column >= prefix, column < upper))
    return or_(*conditions)


def known_areas(conn: Connection) -> set[str]:
    """The registered area codes and grid codes (15 digits: never taken for an area's)."""
    return ({row.code for row in conn.execute(select(areas.c.code))}
            | {row.code for row in conn.execute(select(grids.c.code))})


def registered_area(conn: Connection, code: str) -> str:
    """The normalised code of a registered area; ``AreaError`` otherwise."""
    code = area_codes.normalize(code)
    if conn.execute(select(areas.c.code).where(areas.c.code == code)).first() is None:
        raise area_codes.AreaError(code, "is not in the area registry")
    return code


def import_areas(conn: Connection, source: CsvSource, actor: str) -> int:
    """Add or rename areas and grids from a ``code,name`` CSV; a grid's village must be
    registered or in the file (``AreaError`` otherwise, nothing written)."""
    rows = read_area_csv(source)
    existing = known_areas(conn)
    listed = {code for code, _ in rows}
    for code, _ in rows:
        village = area_codes.village_of_grid(code)
        if area_codes.is_grid_code(code) and village not in existing | listed:
            raise area_codes.AreaError(code, f"is a grid of village {village}, "
                                             "which is not in the area registry")
    new = 0
    for table, of_table in ((areas, [r for r in rows if not area_codes.is_grid_code(r[0])]),
                            (grids, [r for r in rows if area_codes.is_grid_code(r[0])])):
        added = [{"code": code, "name": name} for code, name in of_table if code not in existing]
        if added:
            conn.execute(insert(table), added)
        new += len(added)
        for code, name in of_table:
            if code in existing:
                conn.execute(table.update().where(table.c.code == code).values(name=name))
    audit.record(conn, actor, "import", "areas", {"rows": len(rows), "new": new})
    return len(rows)


@dataclass
class ImportResult:
    """What a roster import did: how the file was read, and the residents added, updated, retired."""

    encoding: str
    notes: list[str]
    ignored: list[str]  # the headers of the columns read past
    added: int = 0
    updated: int = 0
    retired: int = 0

    def as_dict(self) -> dict:
        return {"imported": self.added + self.updated, "added": self.added, "updated": self.updated,
                "retired": self.retired, "encoding": self.encoding, "notes": self.notes,
                "ignored_columns": self.ignored}


#: ``progress(stage, done, total)``: ``writing`` residents checked and written so far of about
#: ``total`` (the file's lines), or ``checking`` with a total of 0 when it cannot be counted (a workbook).
Progress = Callable[[str, int, int], None]


def import_residents(conn: Connection, source: CsvSource, actor: str, *, replace_area: str | None = None,
                     sheet: str | None = None, progress: Progress | None = None) -> ImportResult:
    """Import a roster file (CSV or workbook); raises ``CsvErrors`` on any bad row.

    Residents matched by phone, or else by WeChat openid, are updated (a
    retired one is back on the roster); the rest are added. With
    ``replace_area`` (a registered code; ``AreaError`` otherwise), residents
    beneath it who were on the roster and are not in the file are retired.
    Rows are written as they are checked, so memory does not grow with the
    file: the caller's transaction must roll back on ``CsvErrors`` (nothing is
    then imported), as ``engine.begin()`` does.
    """
    if replace_area is not None:
        replace_area = registered_area(conn, replace_area)
    registry = known_areas(conn)
    report = progress or (lambda stage, done, total: None)
    reading = Roster(source, known_area=registry.__contains__, sheet=sheet)
    expected = roster_lines(source) - 1  # without the header
    result = ImportResult(reading.encoding, reading.notes, reading.ignored)
    on_roster = set() if replace_area is None else set(conn.execute(
        select(residents.c.id).where(beneath(residents.c.area_code, [replace_area]),
                                     residents.c.retired_at.is_(None))).scalars())
    matched: set[int] = set()
    writer = _ResidentWriter(conn)
    rows, chunk = 0, []
    for _, profile in reading.residents():
        chunk.append(profile)
        if len(chunk) == CHUNK:
            rows += _write_chunk(writer, chunk, matched, result)
            chunk = []
            if expected > 0:
                report("writing", rows, max(expected, rows))
            else:
                report("checking", rows, 0)
    rows += _write_chunk(writer, chunk, matched, result)
    report("writing", rows, rows)
    gone = sorted(on_roster - matched)
    now = utcnow()
    for start in range(0, len(gone), CHUNK):
        conn.execute(update(residents).where(residents.c.id.in_(gone[start:start + CHUNK]))
                     .values(retired_at=now))
    result.retired = len(gone)
    if conn.dialect.name == "postgresql" and result.added >= ANALYZE_AFTER_ADDING:
        # A table just filled has no statistics until autovacuum's next pass (a minute or
        # more): the first notice planned after a county's import would sort on guesses.
        conn.execute(text("ANALYZE residents"))
    audit.record(conn, actor, "import", "residents",
                 {"rows": rows, "added": result.added, "updated": result.updated,
                  "retired": result.retired, "replace_area": replace_area, "encoding": result.encoding})
    return result


def roster_lines(source: CsvSource) -> int:
    """How many lines a roster file or upload holds (its rows, about: a cell may hold a line
    break); 0 for a workbook or a text stream, which cannot be counted without reading them."""
    if isinstance(source, (bytes, bytearray)):
        return 0 if source.startswith(b"PK") else source.count(b"\n") + (not source.endswith(b"\n"))
    if not isinstance(source, (str, os.PathLike)):
        return 0
    lines, last = 0, b"\n"
    with open(source, "rb") as binary:
        if binary.read(2) == b"PK":
            return 0
        binary.seek(0)
        while block := binary.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _write_chunk(writer: "_ResidentWriter", chunk: list[ResidentProfile], matched: set[int],
                 result: ImportResult) -> int:
    added, updated = _upsert(writer, chunk, matched)
    result.added += added
    result.updated += updated
    return len(chunk)


def _upsert(writer: "_ResidentWriter", profiles: list[ResidentProfile],
            matched: set[int]) -> tuple[int, int]:
    """Update the residents these profiles match (by phone, else openid), add the rest."""
    conn = writer.conn
    # Padded with NULLs (matching nothing) to a chunk's length: one statement text for every
    # chunk, where each count of values was one more statement in sqlite3's cache (~1 MB
    # each with 3,000 parameters: 120 MB of a county's import).
    phones = _padded([p.phone for p in profiles if p.phone])
    openids = _padded([p.wechat_openid for p in profiles if p.wechat_openid])
    by_phone: dict[str, int] = {}
    by_openid: dict[str, int] = {}
    # One on the roster is preferred to a retired one, then the oldest.
    for row in conn.execute(select(residents.c.id, residents.c.phone, residents.c.wechat_openid)
                            .where(or_(residents.c.phone.in_(phones), residents.c.wechat_openid.in_(openids)))
                            .order_by(residents.c.retired_at.is_not(None), residents.c.id)):
        if row.phone:
            by_phone.setdefault(row.phone, row.id)
        if row.wechat_openid:
            by_openid.setdefault(row.wechat_openid, row.id)
    new, changed = [], []
    for profile in profiles:
        resident_id = by_phone.get(profile.phone) or by_openid.get(profile.wechat_openid)
        if resident_id is None or resident_id in matched:
            new.append(profile)
        else:
            matched.add(resident_id)
            changed.append({"resident_id": resident_id, **resident_row(profile)})
    if new:
        writer.insert(new)
    if changed:
        conn.execute(update(residents).where(residents.c.id == bindparam("resident_id"))
                     .values({**{column: bindparam(column) for column in changed[0] if column != "resident_id"},
                              # and an admin's roster vouches for one who registered themselves
                              "retired_at": None, "pending_review": False}), changed)
    return len(new), len(changed)


def _padded(values: list[str]) -> list[str | None]:
    return values + [None] * (CHUNK - len(values))


def insert_residents(conn: Connection, profiles: Iterable[ResidentProfile]) -> int:
    writer, chunk, count = _ResidentWriter(conn), [], 0
    for profile in profiles:
        chunk.append(profile)
        if len(chunk) == CHUNK:
            count += writer.insert(chunk)
            chunk = []
    return count + writer.insert(chunk)


class _ResidentWriter:
    """Adds residents with the driver's own ``executemany`` of plain tuples: SQLAlchemy's
    parameter processing per row cost more than SQLite's insert itself at a million rows."""

    def __init__(self, conn: Connection):
        self.conn = conn
        columns = (*RESIDENT_ROW_COLUMNS, "pending_review")
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self._statement = (f"INSERT INTO {residents.name} ({', '.join(columns)}) "
                           f"VALUES ({', '.join([mark] * len(columns))})")

    def insert(self, profiles: list[ResidentProfile]) -> int:
        if profiles:
            self.conn.exec_driver_sql(self._statement, [(*_resident_values(p), False) for p in profiles])
        return len(profiles)


def update_resident(conn: Connection, resident_id: int, fields: Mapping[str, str],
                    actor: str) -> ResidentProfile:
    """Replace a resident's details with roster cells, checked by the roster import's rules.

    Raises ``CsvErrors`` naming every bad field (nothing is changed), or
    ``LookupError`` when there is no such resident.
    """
    profile = parse_resident(fields, known_area=known_areas(conn).__contains__)
    # A number marked invalid stays marked until someone changes it.
    kept_mark = case((residents.c.phone == profile.phone, residents.c.phone_invalid), else_=None)
    changed = conn.execute(update(residents).where(residents.c.id == resident_id)
                           .values({**resident_row(profile), "phone_invalid": kept_mark})).rowcount
    if not changed:
        raise LookupError(f"there is no resident {resident_id}")
    audit.record(conn, actor, "edit", f"resident:{resident_id}", {"area": profile.area_code})
    return profile


def mark_phone_invalid(conn: Connection, resident_id: int, phone: str, reason: str) -> bool:
    """Mark a resident's phone as dead (the provider said the number is invalid).

    Only while ``phone`` is still their number: an edit made since the send
    that failed is not undone. Cleared by an edit of the phone (``update_resident``)
    and by a roster import that lists the resident (``resident_row``).
    """
    marked = conn.execute(update(residents)
                          .where(residents.c.id == resident_id, residents.c.phone == phone,
                                 residents.c.phone_invalid.is_(None))
                          .values(phone_invalid=reason[:200])).rowcount
    if marked:
        audit.record(conn, "gateway", "phone_invalid", f"resident:{resident_id}", reason[:200])
    return bool(marked)


def usable_phone():
    """The ``phone`` column as channels may use it: null when the number is marked invalid."""
    return case((residents.c.phone_invalid.is_(None), residents.c.phone), else_=None).label("phone")


def spoken_languages(conn: Connection, resident_ids: Iterable[int]) -> dict[int, str]:
    """resident id → the language calls speak to them (``residents.spoken_language``)."""
    ids = sorted(set(resident_ids))
    found: dict[int, str] = {}
    for start in range(0, len(ids), 1000):  # bounded IN lists
        found.update((row.id, row.spoken_language) for row in conn.execute(
            select(residents.c.id, residents.c.spoken_language)
            .where(residents.c.id.in_(ids[start:start + 1000]))))
    return found


#: The needs a resident may declare on the self-registration page, as resident columns
#: (``has_smartphone`` false: aged 65 or over, or no smartphone: calls rather than apps).
NEED_COLUMNS = {"visually_impaired": ("visually_impaired", True),
                "hearing_impaired": ("hearing_impaired", True),
                "no_smartphone": ("has_smartphone", False)}


def on_roster_by_phone(conn: Connection, phone: str):
    """The resident an approved roster holds with this phone (on the roster first, then the
    oldest), or ``None``: the one a self-registration updates instead of adding another."""
    return conn.execute(select(residents).where(residents.c.phone == phone,
                                                residents.c.pending_review.is_(False))
                        .order_by(residents.c.retired_at.is_not(None), residents.c.id)).first()


def add_pending_resident(conn: Connection, *, name: str, phone: str, area_code: str,
                         language: str) -> int:
    """A self-registered resident awaiting review: no needs, reached only as
    ``audiences.policy.channels_for`` allows one pending review."""
    return conn.execute(insert(residents).values(
        name=name, phone=phone, area_code=area_code, language=language, spoken_language=language,
        visually_impaired=False, hearing_impaired=False, has_smartphone=True, opt_out="",
        test_audience=False, pending_review=True)).inserted_primary_key[0]


def apply_self_registration(conn: Connection, resident_id: int, *, name: str, area_code: str,
                            language: str, needs: Iterable[str]) -> None:
    """An admin approved a self-registration: the resident takes its name, village, language
    and the needs given with consent (needs not given are left as the roster had them)."""
    values = {"name": name, "area_code": area_code, "language": language,
              "pending_review": False, "retired_at": None}
    values.update(dict(NEED_COLUMNS[need] for need in needs))
    conn.execute(update(residents).where(residents.c.id == resident_id).values(values))


def set_preferences(conn: Connection, resident_id: int, *, language: str, needs: Iterable[str],
                    opt_out: Iterable[str]) -> None:
    """A resident's own choices from the self-registration page: language, needs (those not
    named are cleared: consent withdrawn), channels opted out of."""
    chosen = set(needs)
    values = {column: (value if need in chosen else not value)
              for need, (column, value) in NEED_COLUMNS.items()}
    conn.execute(update(residents).where(residents.c.id == resident_id).values(
        language=language, opt_out=";".join(sorted(set(opt_out))), **values))


def erase_resident(conn: Connection, resident_id: int) -> None:
    """Delete what is held about a resident, at their request: the row stays (deliveries
    name its id) with nothing personal left, retired so no plan reaches it. Their deliveries
    are the ledger's to anonymise (``gateway.store.ledger.erasure``)."""
    conn.execute(update(residents).where(residents.c.id == resident_id).values(
        name="", phone=None, wechat_openid=None, birth_year=None, visually_impaired=False,
        hearing_impaired=False, has_smartphone=True, opt_out="", phone_invalid=None,
        grid=None, review_note=None, pending_review=False, retired_at=utcnow()))


#: The columns a roster import or an edit sets, in the order of ``_resident_values``.
RESIDENT_ROW_COLUMNS = ("name", "phone", "wechat_openid", "area_code", "birth_year", "visually_impaired",
                        "hearing_impaired", "has_smartphone", "language", "spoken_language", "opt_out",
                        "test_audience", "grid", "phone_invalid", "review_note")


def resident_row(profile: ResidentProfile) -> dict:
    return dict(zip(RESIDENT_ROW_COLUMNS, _resident_values(profile)))


def _resident_values(profile: ResidentProfile) -> tuple:
    return (profile.name, profile.phone, profile.wechat_openid, profile.area_code, profile.birth_year,
            profile.visually_impaired, profile.hearing_impaired, profile.has_smartphone,
            profile.language, profile.spoken_language, ";".join(sorted(profile.opt_out)),
            profile.test_audience, profile.grid,
            # a roster (re-)import or an edit vouches for the number and the data again
            None, None)


def add_robot(conn: Connection, name: str, area_code: str, robot_key: str, *,
              actor: str = "cli") -> int:
    """Register a WeCom group robot (a village's or a grid team's group) under an area."""
    code = area_codes.normalize(area_code)
    if code not in known_areas(conn):
        raise DeviceError(f"area {code} is not in the area registry")
    if not robot_key.strip() or len(robot_key) > 100:
        raise DeviceError("give the robot's webhook key (the key=… part of its URL)")
    if conn.execute(select(group_robots.c.id).where(group_robots.c.robot_key == robot_key)).first():
        raise DeviceError("that robot is already registered")
    new_id = conn.execute(insert(group_robots).values(name=name, area_code=code,
                                                      robot_key=robot_key.strip())).inserted_primary_key[0]
    audit.record(conn, actor, "import", f"robot:{new_id}", {"area": code, "name": name})
    return new_id


def add_device(conn: Connection, device_id: str, area_code: str, *, test_device: bool = False,
               actor: str = "cli") -> int:
    device_id = device_id.strip()
    try:
        check_device_id(device_id)  # it becomes the device's topic level and broker login
    except ValueError as error:
        raise DeviceError(str(error)) from None
    code = area_codes.normalize(area_code)
    if code not in known_areas(conn):
        raise DeviceError(f"area {code} is not in the area registry")
    if conn.execute(select(devices.c.id).where(devices.c.device_id == device_id)).first():
        raise DeviceError(f"there is already a device {device_id!r}")
    new_id = conn.execute(insert(devices).values(device_id=device_id, area_code=code,
                                                 test_device=test_device)).inserted_primary_key[0]
    audit.record(conn, actor, "import", f"device:{device_id}", {"area": code, "test": test_device})
    return new_id


class DeviceCredentials(NamedTuple):
    """What a loudspeaker's controller is configured with; shown once, never stored as such."""
    device_id: str
    mqtt_password: str  # its broker password (user name: the device id)
    ack_key: str  # base64 seed of the Ed25519 key it signs its acks with


def issue_device_credentials(conn: Connection, device_id: str, *, actor: str = "cli") -> DeviceCredentials:
    """New broker password and ack key for a registered device, replacing any it had.

    Only the password's SHA-256 and the ack key's public half are stored: the
    caller shows the credentials once (``speakers add``, ``speakers rekey``).
    """
    password = secrets.token_urlsafe(24)
    ack_key = SigningKey.generate()
    changed = conn.execute(update(devices).where(devices.c.device_id == device_id).values(
        mqtt_password_hash=_password_digest(password),
        ack_public_key=ack_key.public_base64())).rowcount
    if not changed:
        raise DeviceError(f"there is no device {device_id!r}")
    audit.record(conn, actor, "rekey", f"device:{device_id}", {})
    return DeviceCredentials(device_id, password, ack_key.private_base64())


def device_password_ok(conn: Connection, device_id: str, password: str) -> bool:
    """Whether ``password`` is the broker password last issued to ``device_id``."""
    stored = conn.execute(select(devices.c.mqtt_password_hash)
                          .where(devices.c.device_id == device_id)).scalar_one_or_none()
    return stored is not None and hmac.compare_digest(stored, _password_digest(password))


def ack_public_keys(conn: Connection, device_ids: Iterable[str]) -> dict[str, str]:
    """Device id → the base64 public key its acks verify with, for those that have one."""
    wanted = set(device_ids)
    if not wanted:
        return {}
    return {row.device_id: row.ack_public_key for row in conn.execute(
        select(devices.c.device_id, devices.c.ack_public_key)
        .where(devices.c.device_id.in_(wanted), devices.c.ack_public_key.is_not(None)))}


def _password_digest(password: str) -> str:
    # A random 192-bit password, not a person's: a plain digest resists guessing.
    return hashlib.sha256(password.encode("utf-8")).hexdigest()
