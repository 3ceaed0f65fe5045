"""Users, roles and API tokens.

Passwords are stored as werkzeug's salted scrypt hashes; API tokens only as
their SHA-256, so a copy of the database gives no working token.
"""
from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import Connection, insert, select
from werkzeug.security import check_password_hash, generate_password_hash

from gateway.db import utcnow
from gateway.schema import api_tokens, users

ROLES = ("author", "approver", "admin")
APPROVERS = ("approver", "admin")


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
