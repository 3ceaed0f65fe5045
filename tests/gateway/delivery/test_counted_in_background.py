"""gateway/delivery/reports.py: figures that count a large notice's rows are counted off the
request that asks for them (the status and progress of a notice with millions of deliveries)."""
from __future__ import annotations

import os
import sys
import threading
import time

import pytest
import redis

from gateway.delivery import queues, reports

pytestmark = pytest.mark.integration


@pytest.fixture
def counter():
    calls = []

    def count(conn) -> int:
        calls.append(conn)
        return len(calls)

    count.calls = calls
    return count


def kept(app, name: str):
    with app.app_context():
        return queues.connection().get(f"tongbao:counted:1:{name}")


def test_a_small_notice_is_counted_for_every_answer(app, counter):
    with app.app_context(), app.extensions["engine"].connect() as conn:
        answers = [reports.counted_in_background(conn, 1, "small", reports.COUNTED_INLINE_UP_TO,
                                                 counter) for _ in range(3)]
    assert answers == [1, 2, 3] and kept(app, "small") is None


def test_a_large_notice_answers_what_was_counted_last_and_recounts_in_the_background(
        app, counter, monkeypatch):
    large = reports.COUNTED_INLINE_UP_TO + 1
    with app.app_context(), app.extensions["engine"].connect() as conn:
        assert reports.counted_in_background(conn, 1, "large", large, counter) == 1  # nothing kept
        # Fresh: the kept value, nothing counted.
        assert reports.counted_in_background(conn, 1, "large", large, counter) == 1
        assert len(counter.calls) == 1
        monkeypatch.setattr(reports, "REFRESH_SECONDS", 0)
        monkeypatch.setattr(reports, "REFRESH_DUTY", 0)
        # Stale: still the kept value at once, and one thread counts again.
        assert reports.counted_in_background(conn, 1, "large", large, counter) == 1
    deadline = time.monotonic() + 30
    while kept(app, "large") is None or b'"value": 2' not in kept(app, "large"):
        assert time.monotonic() < deadline, "the background count never landed"
        time.sleep(0.05)
    assert len(counter.calls) == 2 and counter.calls[1] is not conn  # its own connection
    with app.app_context():  # the thread lets the lock go just after keeping the value
        while queues.connection().exists("tongbao:counted:1:large:counting"):
            assert time.monotonic() < deadline, "the background count kept its lock"
            time.sleep(0.05)
    monkeypatch.setattr(reports, "REFRESH_SECONDS", 3600)  # fresh again: no further thread
    with app.app_context(), app.extensions["engine"].connect() as conn:
        assert reports.counted_in_background(conn, 1, "large", large, counter) == 2


def test_callers_asking_before_the_first_count_lands_wait_for_it_instead_of_counting_again(app):
    started, release, calls, answers = threading.Event(), threading.Event(), [], []

    def slow_count(conn) -> int:
        calls.append(conn)
        started.set()
        release.wait(30)
        return 7

    def ask() -> None:
        with app.app_context(), app.extensions["engine"].connect() as conn:
            answers.append(reports.counted_in_background(
                conn, 1, "first", reports.COUNTED_INLINE_UP_TO + 1, slow_count))

    first = threading.Thread(target=ask)
    first.start()
    assert started.wait(30)
    others = [threading.Thread(target=ask) for _ in range(3)]
    for other in others:
        other.start()
    release.set()
    for thread in [first, *others]:
        thread.join(30)
    assert answers == [7, 7, 7, 7] and len(calls) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_a_background_count_runs_at_a_lower_cpu_priority_than_the_answers(app, monkeypatch):
    niceness = []

    def count(conn) -> int:
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return len(niceness)

    large = reports.COUNTED_INLINE_UP_TO + 1
    answering = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with app.app_context(), app.extensions["engine"].connect() as conn:
        reports.counted_in_background(conn, 1, "nice", large, count)  # first: counted here
        monkeypatch.setattr(reports, "REFRESH_SECONDS", 0)
        monkeypatch.setattr(reports, "REFRESH_DUTY", 0)
        reports.counted_in_background(conn, 1, "nice", large, count)  # stale: a thread counts
    deadline = time.monotonic() + 30
    while len(niceness) < 2:
        assert time.monotonic() < deadline, "the background count never landed"
        time.sleep(0.05)
    assert niceness[0] == answering
    assert niceness[1] == min(19, answering + reports.RECOUNT_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == answering


def test_while_redis_does_not_answer_the_process_keeps_the_figure_and_answers_go_on(
        app, counter, monkeypatch):
    large = reports.COUNTED_INLINE_UP_TO + 1
    with app.app_context(), app.extensions["engine"].connect() as conn:
        working = queues.connection()
        app.extensions["redis"] = redis.Redis.from_url("redis://127.0.0.1:1/0")  # refused
        assert reports.counted_in_background(conn, 1, "away", large, counter) == 1
        assert reports.counted_in_background(conn, 1, "away", large, counter) == 1  # kept here
        monkeypatch.setattr(reports, "REFRESH_SECONDS", 0)
        monkeypatch.setattr(reports, "REFRESH_DUTY", 0)
        # stale: counted again here, the caller waiting (no thread, no Redis lock to take)
        assert reports.counted_in_background(conn, 1, "away", large, counter) == 2
        monkeypatch.setattr(reports, "REFRESH_SECONDS", 3600)
        app.extensions["redis"] = working  # back, empty of this figure: Redis keeps it again
        assert reports.counted_in_background(conn, 1, "away", large, counter) == 3
        assert reports.counted_in_background(conn, 1, "away", large, counter) == 3
    assert len(counter.calls) == 3 and kept(app, "away") is not None
