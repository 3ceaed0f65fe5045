"""Password logins: wrong passwords slow a name down from one address, with growing waits;
a good login clears the count; logout ends the sessions."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.store import accounts
from gateway.store.db import utcnow
from gateway.store.schema import api_tokens, audit_log, users

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


def fail(engine, times: int, name="clerk", address="192.0.2.1") -> list[int]:
    waits = []
    for _ in range(times):
        with engine.begin() as conn:
            waits.append(accounts.record_failed_login(conn, name, address))
    return waits


def wait(engine, name="clerk", address="192.0.2.1", at=None) -> int:
    with engine.connect() as conn:
        return accounts.login_wait(conn, name, address, at or utcnow())


def test_failures_below_the_limit_only_count(clerk):
    assert fail(clerk, accounts.MAX_FAILED_LOGINS - 1) == [0] * (accounts.MAX_FAILED_LOGINS - 1)
    assert wait(clerk) == 0
    with clerk.connect() as conn:
        assert "lock" not in actions(conn)


def test_the_waits_grow_with_each_failure_up_to_the_lock_minutes_and_are_audited(clerk):
    waits = fail(clerk, accounts.MAX_FAILED_LOGINS + 6)
    first = accounts.FIRST_LOCK_SECONDS
    assert waits == [0] * (accounts.MAX_FAILED_LOGINS - 1) + [
        first, 2 * first, 4 * first, 8 * first, accounts.LOCK_MINUTES * 60,
        accounts.LOCK_MINUTES * 60, accounts.LOCK_MINUTES * 60]
    assert 0 < wait(clerk) <= accounts.LOCK_MINUTES * 60
    later = utcnow() + timedelta(minutes=accounts.LOCK_MINUTES, seconds=1)
    assert wait(clerk, at=later) == 0
    with clerk.connect() as conn:
        assert actions(conn) == ["lock"] * 7


def test_failures_count_per_name_and_address_whether_or_not_the_name_exists(clerk):
    fail(clerk, accounts.MAX_FAILED_LOGINS)
    fail(clerk, accounts.MAX_FAILED_LOGINS, name="nobody")
    assert wait(clerk) > 0 and wait(clerk, name="nobody") > 0
    assert wait(clerk, address="192.0.2.2") == 0  # the same name from elsewhere
    assert wait(clerk, name="clerk2") == 0
    with clerk.connect() as conn:
        user = user_named(conn)
        assert user.failed_logins == 0 and user.locked_until is None  # the account is not locked


def test_a_login_clears_the_failures_from_its_address_and_is_audited(clerk):
    fail(clerk, 3)
    fail(clerk, 3, address="192.0.2.2")
    with clerk.begin() as conn:
        accounts.record_login(conn, user_named(conn), "192.0.2.1")
    assert fail(clerk, accounts.MAX_FAILED_LOGINS - 1) == [0] * (accounts.MAX_FAILED_LOGINS - 1)
    assert fail(clerk, 2, address="192.0.2.2")[-1] == accounts.FIRST_LOCK_SECONDS
    with clerk.connect() as conn:
        assert actions(conn) == ["login", "lock"]


def test_an_unknown_user_or_one_without_a_password_never_matches(clerk):
    with clerk.begin() as conn:
        accounts.create_user(conn, "robot", "author", None)
        assert not accounts.password_matches(None, "clerk-password")
        assert not accounts.password_matches(user_named(conn, "robot"), "")
        assert accounts.password_matches(user_named(conn), "clerk-password")


def test_ending_the_sessions_bumps_the_generation(clerk):
    with clerk.begin() as conn:
        before = user_named(conn).session_generation
        accounts.end_sessions(conn, user_named(conn).id)
        assert user_named(conn).session_generation == before + 1


def test_an_api_token_is_stored_only_as_its_digest(clerk):
    with clerk.begin() as conn:
        token = accounts.create_token(conn, "clerk")
        stored = conn.execute(select(api_tokens.c.token_hash)).scalar_one()
        assert accounts.user_for_token(conn, token).name == "clerk"
        assert accounts.user_for_token(conn, stored) is None  # the stored value is no token
    assert token not in stored and stored == hashlib.sha256(token.encode()).hexdigest()
