"""Password logins: wrong passwords lock an account for a while, a good login clears the count."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.store import accounts
from gateway.store.db import utcnow
from gateway.store.schema import audit_log, users

pytestmark = pytest.mark.integration


@pytest.fixture
def clerk(app):
    with app.extensions["engine"].begin() as conn:
        accounts.create_user(conn, "clerk", "author", "clerk-password")
    return app.extensions["engine"]


def user_named(conn, name="clerk"):
    return conn.execute(select(users).where(users.c.name == name)).one()


def actions(conn) -> list[str]:
    return [row.action for row in conn.execute(select(audit_log).order_by(audit_log.c.id))]


def fail(engine, times: int) -> None:
    for _ in range(times):
        with engine.begin() as conn:
            accounts.record_failed_login(conn, user_named(conn))


def test_failures_below_the_limit_only_count(clerk):
    fail(clerk, accounts.MAX_FAILED_LOGINS - 1)
    with clerk.connect() as conn:
        user = user_named(conn)
        assert user.failed_logins == accounts.MAX_FAILED_LOGINS - 1
        assert not accounts.is_locked(user, utcnow())
        assert "lock" not in actions(conn)


def test_the_last_allowed_failure_locks_for_the_lock_minutes_and_is_audited(clerk):
    fail(clerk, accounts.MAX_FAILED_LOGINS)
    with clerk.connect() as conn:
        user = user_named(conn)
        assert user.failed_logins == 0
        assert accounts.is_locked(user, utcnow())
        later = utcnow() + timedelta(minutes=accounts.LOCK_MINUTES, seconds=1)
        assert not accounts.is_locked(user, later)
        assert actions(conn) == ["lock"]


def test_failures_counted_from_a_stale_row_still_add_up(clerk):
    """Each failure counts in the database, not from the row the caller read earlier."""
    with clerk.connect() as conn:
        stale = user_named(conn)
    for _ in range(accounts.MAX_FAILED_LOGINS):
        with clerk.begin() as conn:
            accounts.record_failed_login(conn, stale)
    with clerk.connect() as conn:
        assert accounts.is_locked(user_named(conn), utcnow())


def test_a_login_clears_failures_and_an_old_lock_and_is_audited(clerk):
    with clerk.begin() as conn:
        conn.execute(users.update().where(users.c.name == "clerk").values(
            failed_logins=3, locked_until=utcnow() - timedelta(seconds=1)))
        accounts.record_login(conn, user_named(conn))
    with clerk.connect() as conn:
        user = user_named(conn)
        assert user.failed_logins == 0 and user.locked_until is None
        assert actions(conn) == ["login"]


def test_a_user_never_locked_is_not_locked(clerk):
    with clerk.connect() as conn:
        assert not accounts.is_locked(user_named(conn), utcnow())
