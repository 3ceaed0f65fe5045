"""The console's login (gateway/web/console/auth.py): passwords, locks, idle sessions, logout."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.store import accounts as users_service
from gateway.store.db import utcnow
from gateway.store.schema import audit_log, users
from gateway.web.console import auth as console_auth
from tests.gateway.console.conftest import csrf_token, login, logout, page, submit

pytestmark = pytest.mark.integration


def test_pages_need_a_login(client):
    for path in ("/", "/announcements/new", "/residents", "/devices", "/outbox"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.startswith("/login")


def test_wrong_password_is_refused_and_the_right_one_lets_in(client):
    token = csrf_token(client)
    refused = client.post("/login", data={"name": "author", "password": "wrong-password",
                                          "csrf_token": token})
    assert refused.status_code == 200 and "用户名或密码错误" in page(refused)
    login(client, "author")
    assert client.get("/").status_code == 200


def test_missing_login_fields_are_refused(client):
    response = client.post("/login", data={"name": "author", "csrf_token": csrf_token(client)})
    assert "请输入用户名和密码" in page(response)
    assert client.get("/").status_code == 302


def test_five_failed_logins_lock_the_account_even_for_the_right_password(app, client):
    for _ in range(users_service.MAX_FAILED_LOGINS):
        client.post("/login", data={"name": "author", "password": "wrong-password",
                                    "csrf_token": csrf_token(client)})
    locked = client.post("/login", data={"name": "author", "password": "author-password",
                                         "csrf_token": csrf_token(client)})
    assert locked.status_code == 200 and "已锁定" in page(locked)
    assert client.get("/").status_code == 302
    with app.extensions["engine"].connect() as conn:
        user = conn.execute(select(users).where(users.c.name == "author")).one()
        locks = conn.execute(select(audit_log).where(audit_log.c.action == "lock")).all()
    assert user.locked_until is not None and len(locks) == 1


def test_the_lock_ends_after_its_minutes(app, client):
    with app.extensions["engine"].begin() as conn:
        conn.execute(users.update().where(users.c.name == "author")
                     .values(locked_until=utcnow() - timedelta(seconds=1)))
    login(client, "author")
    assert client.get("/").status_code == 200


def test_an_idle_session_times_out(app, client):
    login(client, "author")
    idle = timedelta(minutes=app.config.get("SESSION_MINUTES", 30), seconds=1)
    with client.session_transaction() as session:
        session["last_seen"] -= idle.total_seconds()
    response = client.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")
    assert "会话已超时" in page(client.get(response.location))


def test_polling_does_not_keep_an_idle_session_alive(app, client):
    login(client, "author")
    announcement_id = submit(client)
    with client.session_transaction() as session:
        before = session["last_seen"] = time.time() - 60
    client.get(f"/announcements/{announcement_id}/progress.json",
               headers={console_auth.BACKGROUND_HEADER: "1"})
    with client.session_transaction() as session:
        assert session["last_seen"] == before


def test_logout_ends_the_session(client):
    login(client, "author")
    logout(client)
    assert client.get("/").status_code == 302
