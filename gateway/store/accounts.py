"""Users, roles, password logins and API tokens.

Passwords are stored as werkzeug's salted scrypt hashes; API tokens only as
their SHA-256, so a copy of the database gives no working token. Repeated wrong
passwords lock an account for a while, so a password cannot be guessed online.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.store import audit
from gateway.store.db import as_utc, utcnow
from gateway.store.schema import api_tokens, users

ROLES = ("author", "approver", "admin")
APPROVERS = ("approver", "admin")
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15


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
    return bool(user.password_hash) and check_password_hash(user.password_hash, password)


def is_locked(user, now: datetime) -> bool:
    return user.locked_until is not None and as_utc(user.locked_until) > now


def record_failed_login(conn: Connection, user) -> None:
    """Count a wrong password; the ``MAX_FAILED_LOGINS``-th in a row locks the account."""
    conn.execute(update(users).where(users.c.id == user.id)
                 .values(failed_logins=users.c.failed_logins + 1))
    failures = conn.execute(select(users.c.failed_logins)
                            .where(users.c.id == user.id)).scalar_one()
    if failures < MAX_FAILED_LOGINS:
        return
    conn.execute(update(users).where(users.c.id == user.id).values(
        failed_logins=0, locked_until=utcnow() + timedelta(minutes=LOCK_MINUTES)))
    audit.record(conn, user.name, "lock", "console",
                 {"failed_logins": failures, "minutes": LOCK_MINUTES})


def record_login(conn: Connection, user) -> None:
    """A successful login clears the failure count and any expired lock."""
    conn.execute(update(users).where(users.c.id == user.id)
                 .values(failed_logins=0, locked_until=None))
    audit.record(conn, user.name, "login", "console")


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
