"""Shared helpers of the console's tests: a test client, logging in, the compose form.

Every console page test drives Flask's test client against the real database
and Redis of tests/conftest.py, with the county of tests/gateway/conftest.py.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from gateway.store.schema import announcements
from tests.gateway.conftest import DISTRICT

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def client(app, county):
    return app.test_client()


def csrf_token(client, path="/login") -> str:
    return CSRF_FIELD.search(client.get(path).get_data(as_text=True)).group(1)


def login(client, name: str):
    response = client.post("/login", data={"name": name, "password": f"{name}-password",
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def logout(client):
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})


def compose_form(client, **overrides) -> dict:
    form = {"csrf_token": csrf_token(client, "/announcements/new"), "headline": "暴雨红色预警",
            "body": "预计未来3小时有特大暴雨。", "instruction": "请转移到安全地带。",
            "severity": "moderate", "status": "actual", "language": "zh", "msg_type": "alert",
            "areas": [DISTRICT], "channels": ["sms", "voice", "wechat", "loudspeaker"]}
    form.update(overrides)
    return {name: value for name, value in form.items() if value is not None}


def submit(client, **overrides) -> int:
    response = client.post("/announcements/new", data={**compose_form(client, **overrides),
                                                       "submit": "1"})
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.location.rsplit("/", 1)[1])


def approve(client, announcement_id: int):
    token = csrf_token(client, f"/announcements/{announcement_id}/approve")
    return client.post(f"/announcements/{announcement_id}/approve",
                       data={"csrf_token": token, "confirmed": "1"})


def released(client) -> int:
    """An announcement the author submitted and the approver approved (left logged in)."""
    login(client, "author")
    announcement_id = submit(client)
    logout(client)
    login(client, "approver")
    assert approve(client, announcement_id).status_code == 302
    return announcement_id


def announcement_count(app) -> int:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(func.count()).select_from(announcements)).scalar_one()


def state_of(app, announcement_id: int) -> str:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(announcements.c.state)
                            .where(announcements.c.id == announcement_id)).scalar_one()


def page(response) -> str:
    return response.get_data(as_text=True)
