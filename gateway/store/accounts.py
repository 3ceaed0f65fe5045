"""Users, roles, password logins and API tokens.

Passwords are stored as werkzeug's salted scrypt hashes; API tokens only as
their SHA-256, so a copy of the database gives no working token.

Wrong passwords are counted per (name typed, client address), whether or not the
name exists: from ``MAX_FAILED_LOGINS`` failures on, each further try from that
address for that name waits ``FIRST_LOCK_SECONDS``, then twice as long after
each failure, up to ``LOCK_MINUTES``. So a password cannot be guessed online,
and nobody can lock the approvers out before an emergency by typing wrong
passwords for them from elsewhere: their own address is not slowed. An unknown
name is checked against a dummy hash, so it takes as long as a real one.
"""
from __future__ import annotations

import functools
import hashlib
import math
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.store import audit
from gateway.store.db import as_utc, utcnow
from gateway.store.schema import api_tokens, login_failures, users

#: A grid worker (网格员) sees only the residents of their grids, on their phone page:
#: every other console page and the whole API refuse them.
GRID_WORKER = "grid_worker"
ROLES = ("author", "approver", "admin", GRID_WORKER)
APPROVERS = ("approver", "admin")
MAX_FAILED_LOGINS = 5
FIRST_LOCK_SECONDS = 60
LOCK_MINUTES = 15          # the longest wait
FORGET_FAILURES_AFTER = timedelta(days=1)


class AuthError(ValueError):
    pass


def create_user(conn: Connection, name: str, role: str, password: str | None) -> int:
    if role not in ROLES:
        raise AuthError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if not name or len(name) > 64:
        raise AuthError("a user name of 1 to 64 characters is required")
    if conn.execute(select(users.c.id).where(users.c.name == name)).first():
        raise AuthError(f"there is already a user named {name!r}")
    if password is not None and len(password) < 8:
        raise AuthError("a password needs at least 8 characters")
    return conn.execute(insert(users).values(
        name=name, role=role, created_at=utcnow(), failed_logins=0,
        password_hash=generate_password_hash(password) if password else None)).inserted_primary_key[0]


def find_user(conn: Connection, name: str):
    return conn.execute(select(users).where(users.c.name == name)).first()


def password_matches(user, password: str) -> bool:
    """Whether ``password`` is ``user``'s; as slow for no user (``None``) or no password set."""
    if user is None or not user.password_hash:
        check_password_hash(_dummy_hash(), password)
        return False
    return check_password_hash(user.password_hash, password)


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))


def login_wait(conn: Connection, name: str, address: str, now: datetime) -> int:
    """Seconds before ``name`` may try again from ``address`` (0: now)."""
    until = conn.execute(select(login_failures.c.locked_until)
                         .where(*_failure_key(name, address))).scalar()
    if until is None or as_utc(until) <= now:
        return 0
    return math.ceil((as_utc(until) - now).total_seconds())


def record_failed_login(conn: Connection, name: str, address: str) -> int:
    """Count a wrong password for (name, address); returns the seconds it now waits (0: none)."""
    name, address = name[:64], address[:64]
    now = utcnow()
    row = conn.execute(select(login_failures).where(*_failure_key(name, address))).first()
    if row is None:  # a concurrent failure may make the row first: that one is kept
        dialect_insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(dialect_insert(login_failures).values(
            name=name, address=address, failures=0, updated_at=now).on_conflict_do_nothing())
    elif as_utc(row.updated_at) < now - FORGET_FAILURES_AFTER:
        conn.execute(update(login_failures).where(*_failure_key(name, address))
                     .values(failures=0, locked_until=None))
    conn.execute(update(login_failures).where(*_failure_key(name, address))
                 .values(failures=login_failures.c.failures + 1, updated_at=now))
    failures = conn.execute(select(login_failures.c.failures)
                            .where(*_failure_key(name, address))).scalar_one()
    if failures < MAX_FAILED_LOGINS:
        return 0
    seconds = min(FIRST_LOCK_SECONDS * 2 ** (failures - MAX_FAILED_LOGINS), LOCK_MINUTES * 60)
    conn.execute(update(login_failures).where(*_failure_key(name, address))
                 .values(locked_until=now + timedelta(seconds=seconds)))
    audit.record(conn, name, "lock", "console",
                 {"failed_logins": failures, "address": address, "seconds": seconds})
    return seconds


def _failure_key(name: str, address: str):
    return login_failures.c.name == name[:64], login_failures.c.address == address[:64]


def record_login(conn: Connection, user, address: str) -> None:
    """A successful login forgets the failures from that address."""
    conn.execute(delete(login_failures).where(*_failure_key(user.name, address)))
    audit.record(conn, user.name, "login", "console")


def end_sessions(conn: Connection, user_id: int) -> None:
    """Logout: every session cookie issued to this user so far is refused from now on."""
    conn.execute(update(users).where(users.c.id == user_id)
                 .values(session_generation=users.c.session_generation + 1))


def create_token(conn: Connection, user_name: str) -> str:
    user = find_user(conn, user_name)
    if user is None:
        raise AuthError(f"there is no user named {user_name!r}")
    token = "tb_" + secrets.token_urlsafe(32)
    conn.execute(insert(api_tokens).values(user_id=user.id, token_hash=_digest(token),
                                           created_at=utcnow()))
    return token


def user_for_token(conn: Connection, token: str):
    return conn.execute(select(users).join(api_tokens, api_tokens.c.user_id == users.c.id)
                        .where(api_tokens.c.token_hash == _digest(token))).first()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
