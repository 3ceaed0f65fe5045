"""The registry of broadcast destinations: TV stations, traffic radio, the emergency
broadcasting platform, and signed webhooks of partner systems (table ``destinations``).

Each has an area: a notice goes to the destinations whose area contains one of its areas
or lies within one (a city's platform hears of a village's flood; a county station of a
notice to the whole city). Its URL must be HTTPS (plain HTTP only to this machine, for a
stand-in). The shared secret signs every request; the pull feed's token is shown once and
only its SHA-256 kept, as for API tokens.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Connection, and_, delete, func, insert, or_, select

from audiences import areas as area_codes
from gateway.store import audit
from gateway.store.db import utcnow
from gateway.store.roster import beneath, known_areas
from gateway.store.schema import deliveries, destinations

#: tv, radio and platform get the GB/T 35965.1 document, crawl and script; webhook JSON.
KINDS = ("tv", "radio", "platform", "webhook")
BROADCAST_KINDS = ("tv", "radio", "platform")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MIN_SECRET_LENGTH = 16


class DestinationError(ValueError):
    """Refused input; ``field`` names what was wrong (name, kind, area, url, secret), for the
    console to say it in the user's language."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Added:
    id: int
    secret: str
    feed_token: str  # shown once


def channel_of(kind: str) -> str:
    """The delivery channel serving a destination of this kind."""
    return "webhook" if kind == "webhook" else "broadcast"


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if len(url) > 500 or not parts.hostname:
        raise DestinationError("give the destination's full URL, https://…", "url")
    if parts.scheme != "https" and not (parts.scheme == "http"
                                        and parts.hostname in LOOPBACK_HOSTS):
        raise DestinationError("the URL must be https:// (plain http only to this machine)", "url")
    return url


def add(conn: Connection, *, name: str, kind: str, area_code: str, url: str,
        secret: str | None = None, test_destination: bool = False, actor: str = "cli") -> Added:
    """Register a destination; a secret is made when none is given."""
    name = name.strip()
    if not name or len(name) > 100:
        raise DestinationError("give the destination a name of at most 100 characters", "name")
    if kind not in KINDS:
        raise DestinationError(f"kind {kind!r} is not one of {', '.join(KINDS)}", "kind")
    try:
        code = area_codes.normalize(area_code)
    except ValueError as error:
        raise DestinationError(str(error), "area") from None
    if code not in known_areas(conn):
        raise DestinationError(f"area {code} is not in the area registry", "area")
    secret = (secret or secrets.token_urlsafe(32)).strip()
    if not MIN_SECRET_LENGTH <= len(secret) <= 128:
        raise DestinationError(f"the shared secret must be {MIN_SECRET_LENGTH} to 128 characters",
                               "secret")
    if conn.execute(select(destinations.c.id).where(destinations.c.name == name)).first():
        raise DestinationError(f"there is already a destination named {name!r}", "taken")
    feed_token = secrets.token_urlsafe(32)
    new_id = conn.execute(insert(destinations).values(
        name=name, kind=kind, area_code=code, url=check_url(url), secret=secret,
        feed_token_hash=digest(feed_token), test_destination=test_destination,
        created_at=utcnow())).inserted_primary_key[0]
    audit.record(conn, actor, "import", f"destination:{new_id}",
                 {"name": name, "kind": kind, "area": code, "test": test_destination})
    return Added(new_id, secret, feed_token)


def remove(conn: Connection, name: str, *, actor: str = "cli") -> None:
    row = conn.execute(select(destinations.c.id).where(destinations.c.name == name)).first()
    if row is None:
        raise DestinationError(f"there is no destination named {name!r}", "name")
    conn.execute(delete(destinations).where(destinations.c.id == row.id))
    audit.record(conn, actor, "delete", f"destination:{row.id}", {"name": name})


def listed(conn: Connection) -> list:
    """Every destination, without its secret."""
    return conn.execute(select(*(c for c in destinations.c if c.name not in (
        "secret", "feed_token_hash"))).order_by(destinations.c.name)).all()


def get(conn: Connection, destination_id: int):
    return conn.execute(select(destinations).where(destinations.c.id == destination_id)).first()


def by_feed_token(conn: Connection, token: str):
    if not token:
        return None
    return conn.execute(select(destinations)
                        .where(destinations.c.feed_token_hash == digest(token))).first()


def serving(conn: Connection, codes: list[str], *, drill: bool, kinds=KINDS) -> list:
    """The destinations a notice to ``codes`` goes to, in id order; a drill only to test ones."""
    condition = and_(destinations.c.kind.in_(kinds), overlapping(codes))
    if drill:
        condition = and_(condition, destinations.c.test_destination.is_(True))
    return conn.execute(select(destinations).where(condition).order_by(destinations.c.id)).all()


def overlapping(codes: list[str]):
    """Destinations whose area is within one of ``codes`` or contains one."""
    above = set()
    for code in codes:
        parent = area_codes.parent(code)
        while parent:
            above.add(parent)
            parent = area_codes.parent(parent)
    return or_(beneath(destinations.c.area_code, codes), destinations.c.area_code.in_(sorted(above)))


def covers(destination, codes: list[str]) -> bool:
    """``overlapping`` for one destination in Python (the pull feed's filter)."""
    mine = area_codes.prefix(destination.area_code)
    return any(code.startswith(mine) or destination.area_code.startswith(area_codes.prefix(code))
               for code in codes)


def last_deliveries(conn: Connection) -> dict[int, object]:
    """Each destination's latest delivery (status, last error, tries, when): the console shows
    one still being retried after an error as failing."""
    latest = (select(deliveries.c.recipient_id, func.max(deliveries.c.id).label("id"))
              .where(deliveries.c.channel.in_(("broadcast", "webhook")))
              .group_by(deliveries.c.recipient_id).subquery())
    rows = conn.execute(select(deliveries.c.recipient_id, deliveries.c.status,
                               deliveries.c.last_error, deliveries.c.attempts,
                               deliveries.c.updated_at)
                        .join(latest, deliveries.c.id == latest.c.id)).all()
    return {row.recipient_id: row for row in rows}


def is_failing(delivery) -> bool:
    """Its latest delivery is not through and the last try ended in an error."""
    return bool(delivery and delivery.last_error
                and delivery.status not in ("delivered", "confirmed", "cancelled"))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
