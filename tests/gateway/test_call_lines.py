"""The concurrent-calls limit (``VOICE_CONCURRENT_CALLS``, ``gateway.delivery.call_lines``): a
call takes a line before it is placed and gives it back on its final status callback, or when
it has lasted longer than any call can."""
from __future__ import annotations

import threading
import time

import pytest

from gateway.delivery import call_lines
from tests.conftest import run_jobs
from tests.gateway.conftest import VILLAGE_A
from tests.gateway.test_twilio_webhooks import PUBLIC, deliver, publish, sent_to

pytestmark = pytest.mark.integration


@pytest.fixture
def app(make_app, database_url, twilio):
    return make_app(database_url, PUBLIC_BASE_URL=PUBLIC, TWILIO_ACCOUNT_SID=twilio.account_sid,
                    TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_FROM_NUMBER="+15005550006",
                    TWILIO_API_BASE=twilio.url, VOICE_CONCURRENT_CALLS=1)


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def in_background(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def taken_in(app, delivery_id: int) -> float:
    with app.app_context():
        return call_lines.take(delivery_id)


def test_a_call_waits_for_a_free_line_and_a_line_lapses(app, monkeypatch):
    with app.app_context():
        assert call_lines.take(1) == 0.0 and call_lines.in_use() == 1
        second = in_background(lambda: taken_in(app, 2))
        second.join(0.5)
        assert second.is_alive() and call_lines.in_use() == 1  # the one line is busy
    with app.app_context():
        call_lines.release(1)
    second.join(10)
    assert not second.is_alive()
    monkeypatch.setattr(call_lines, "LONGEST_CALL_SECONDS", 0.2)  # no callback ever comes
    with app.app_context():
        call_lines.release(2)
        call_lines.take(3)
        assert call_lines.take(4) > 0  # waited for the first to lapse
        assert call_lines.in_use() == 1


def test_no_limit_takes_no_line(app):
    app.config["VOICE_CONCURRENT_CALLS"] = 0
    with app.app_context():
        assert call_lines.take(1) == 0.0 and call_lines.take(2) == 0.0
        assert call_lines.in_use() == 0


def test_the_next_call_is_placed_when_the_last_ones_callback_says_it_is_over(app, api, twilio):
    publish(api, channels=["voice"], areas=[VILLAGE_A], severity="extreme")
    finals = ["completed", "busy", "no-answer", "failed", "completed", "completed"]
    ended: list[str] = []
    over_the_limit: list[int] = []
    done = threading.Event()

    def resident() -> None:  # answers each call as it comes, with a final status
        client = app.test_client()
        while not done.is_set():
            calls = list(twilio.calls)
            if len(calls) == len(ended):
                time.sleep(0.05)
                continue
            if len(calls) > len(ended) + 1:
                over_the_limit.append(len(calls) - len(ended))
            sid = calls[len(ended)]
            deliver(client, twilio.status_callback(sid, "ringing"))  # not final: line kept
            with app.app_context():
                if call_lines.in_use() != 1:
                    over_the_limit.append(call_lines.in_use())
            deliver(client, twilio.status_callback(sid, finals[len(ended) % len(finals)]))
            ended.append(sid)

    answering = in_background(resident)
    run_jobs(app, scheduled=False)  # returns once every call is placed
    wait_until(lambda: len(ended) == len(twilio.calls))
    done.set()
    answering.join(10)
    assert len(ended) >= 2 and over_the_limit == []
    with app.app_context():
        assert call_lines.in_use() == 0
