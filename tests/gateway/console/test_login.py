"""The console's login (gateway/web/console/auth.py): passwords, locks, idle sessions, logout."""
from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.store import accounts as users_service
from gateway.store.db import utcnow
from gateway.store.schema import audit_log, login_failures, users
from gateway.web.console import auth as console_auth
from tests.gateway.console.conftest import csrf_token, login, logout, page, submit

pytestmark = pytest.mark.integration
FLASH = re.compile(r'<p class="flash[^"]*"[^>]*>(.*?)</p>', re.S)


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


def fail_logins(client, name: str, times: int = users_service.MAX_FAILED_LOGINS, **kwargs):
    for _ in range(times):
        client.post("/login", data={"name": name, "password": "wrong-password",
                                    "csrf_token": csrf_token(client)}, **kwargs)


def test_five_failed_logins_lock_the_name_from_that_address_even_for_the_right_password(
        app, client):
    fail_logins(client, "author")
    locked = client.post("/login", data={"name": "author", "password": "author-password",
                                         "csrf_token": csrf_token(client)})
    assert locked.status_code == 200 and "失败次数过多" in page(locked)
    assert client.get("/").status_code == 302
    with app.extensions["engine"].connect() as conn:
        failures = conn.execute(select(login_failures)).one()
        locks = conn.execute(select(audit_log).where(audit_log.c.action == "lock")).all()
    assert (failures.name, failures.address) == ("author", "127.0.0.1")
    assert failures.locked_until is not None and len(locks) == 1


def test_the_lock_ends_after_its_minutes(app, client):
    fail_logins(client, "author")
    with app.extensions["engine"].begin() as conn:
        conn.execute(login_failures.update().values(locked_until=utcnow() - timedelta(seconds=1)))
    login(client, "author")
    assert client.get("/").status_code == 200


def test_wrong_passwords_from_elsewhere_do_not_lock_the_approver_out(app, client):
    """Per (name, client address): someone typing wrong passwords cannot stop an approver."""
    attacker = app.test_client()
    elsewhere = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    fail_logins(attacker, "approver", users_service.MAX_FAILED_LOGINS + 3, **elsewhere)
    refused = attacker.post("/login", data={"name": "approver", "password": "approver-password",
                                            "csrf_token": csrf_token(attacker)}, **elsewhere)
    assert refused.status_code == 200 and "失败次数过多" in page(refused)
    login(client, "approver")  # from the approver's own address
    assert client.get("/").status_code == 200


def test_the_lock_message_is_the_same_for_an_unknown_name(client):
    answers = {}
    for name in ("author", "no-such-user"):
        fail_logins(client, name)
        answers[name] = page(client.post("/login", data={
            "name": name, "password": "wrong-password", "csrf_token": csrf_token(client)}))
        assert "失败次数过多" in answers[name]
    wrong = {name: page(client.post("/login", data={"name": name, "password": "x" * 9,
                                                    "csrf_token": csrf_token(client)},
                                    environ_base={"REMOTE_ADDR": "198.51.100.1"}))
             for name in ("author", "no-such-user")}
    flashes = {name: FLASH.findall(text) for name, text in wrong.items()}
    assert flashes["author"] == flashes["no-such-user"] and len(flashes["author"]) == 1
    assert "用户名或密码错误" in wrong["author"]


def test_an_unknown_name_is_checked_against_a_password_hash_too(client, monkeypatch):
    """No user enumeration by timing: an unknown name costs one hash check like a real one."""
    checks = []
    real_check = users_service.check_password_hash
    monkeypatch.setattr(users_service, "check_password_hash",
                        lambda stored, password: checks.append(password) or
                        real_check(stored, password))
    for name in ("author", "no-such-user"):
        client.post("/login", data={"name": name, "password": f"guess-for-{name}",
                                    "csrf_token": csrf_token(client)})
    assert checks == ["guess-for-author", "guess-for-no-such-user"]
    started = time.perf_counter()
    client.post("/login", data={"name": "author", "password": "wrong-password",
                                "csrf_token": csrf_token(client)})
    known = time.perf_counter() - started
    started = time.perf_counter()
    client.post("/login", data={"name": "no-such-user", "password": "wrong-password",
                                "csrf_token": csrf_token(client)})
    unknown = time.perf_counter() - started
    assert unknown > known / 3  # a hash each (scrypt dominates); no sub-millisecond answer


@pytest.mark.parametrize("target", [
    "/%09/evil.example/path", "//evil.example/path", "/%5Cevil.example", "/%5C/evil.example",
    "https://evil.example/", "%2F%2Fevil.example", "/%0D%0A/evil.example", "javascript:alert(1)",
    "/%E2%80%A8x", "/%C2%85/evil.example"])
def test_next_is_followed_only_to_a_path_on_this_site(client, target):
    response = client.post(f"/login?next={target}", data={
        "name": "author", "password": "author-password", "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    if "%E2%80%A8" in target:  # an odd but harmless character: a path here all the same
        assert response.location.startswith("/") and not response.location.startswith("//")
    else:
        assert response.location == "/", response.location


def test_next_to_a_page_here_is_followed(client):
    response = client.post("/login?next=/residents%3Fq%3D%E5%BC%A0", data={
        "name": "author", "password": "author-password", "csrf_token": csrf_token(client)})
    assert response.location == "/residents?q=%E5%BC%A0"


def test_a_crlf_in_next_when_choosing_a_language_is_refused_with_400(client):
    for target in ("/\r\nSet-Cookie: x=1", "/\nx", "/\tx"):
        response = client.post("/language", data={"language": "en", "next": target,
                                                  "csrf_token": csrf_token(client)})
        assert response.status_code == 400, target
    ok = client.post("/language", data={"language": "en", "next": "//evil.example",
                                        "csrf_token": csrf_token(client)})
    assert ok.status_code == 302 and ok.location == "/"


def set_cookie_header(response) -> str:
    [cookie] = [v for v in response.headers.getlist("Set-Cookie") if v.startswith("session=")]
    return cookie


def test_the_session_cookie_is_samesite_lax_and_secure_behind_https(make_app, database_url):
    for base, secure in (("http://127.0.0.1:5000", False), ("https://tongbao.example.gov.cn", True)):
        app = make_app(database_url, PUBLIC_BASE_URL=base)
        with app.extensions["engine"].begin() as conn:
            if users_service.find_user(conn, "clerk") is None:
                users_service.create_user(conn, "clerk", "author", "clerk-password")
        client = app.test_client()
        response = client.post("/login", data={"name": "clerk", "password": "clerk-password",
                                               "csrf_token": csrf_token(client)})
        assert response.status_code == 302
        cookie = set_cookie_header(response)
        assert "SameSite=Lax" in cookie and "HttpOnly" in cookie
        assert ("Secure" in cookie.split("; ")) is secure, cookie


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


def test_a_cookie_copied_before_logout_is_refused_after_it(app, client):
    login(client, "author")
    copied = client.get_cookie("session").value
    logout(client)
    thief = app.test_client()
    thief.set_cookie("session", copied)
    response = thief.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")
    login(client, "author")  # a new login works again
    assert client.get("/").status_code == 200


def test_behind_a_trusted_proxy_failures_count_per_forwarded_address(make_app, database_url):
    app = make_app(database_url, TRUSTED_PROXIES=1)
    with app.extensions["engine"].begin() as conn:
        users_service.create_user(conn, "clerk", "approver", "clerk-password")
    client = app.test_client()
    attacker = {"headers": {"X-Forwarded-For": "203.0.113.9"}}
    fail_logins(client, "clerk", **attacker)
    refused = client.post("/login", data={"name": "clerk", "password": "clerk-password",
                                          "csrf_token": csrf_token(client)}, **attacker)
    assert "失败次数过多" in page(refused)
    allowed = client.post("/login", data={"name": "clerk", "password": "clerk-password",
                                          "csrf_token": csrf_token(client)},
                          headers={"X-Forwarded-For": "198.51.100.7"})
    assert allowed.status_code == 302
