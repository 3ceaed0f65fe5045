"""What the benchmark scripts share: scratch databases and Redis, the county, fakes, tables.

Every script works on a database it creates (an SQLite file in a temporary
directory, or a throwaway PostgreSQL database it drops afterwards) and a Redis
database number it flushes before and after, so it never touches anything else.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from typing import Iterator

import psutil
import redis
from sqlalchemy import create_engine, insert, text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POSTGRES_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
# Outside 8-15, the databases test runs claim (tests/conftest.py): a bench flushes its own.
DEFAULT_REDIS_DB = 6
HEADLINE = "暴雨红色预警"
BODY = "预计未来3小时我市有特大暴雨，局地有山洪和地质灾害风险。"
INSTRUCTION = "请立即转移到安全地带，远离河道和山坡。"
FROM_NUMBER = "+15005550006"
WECHAT_TEMPLATE = "bench-template-id"


# --- the machine and the output ---------------------------------------------------------

def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    return {"cpus": str(os.cpu_count()), "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
            "cpu_model": cpu, "python": platform.python_version()}


def print_table(title: str, rows: list[tuple[str, object, str]], result: dict, *,
                emit: bool = True) -> None:
    """A plain table of (figure, value, note), then one JSON line the smoke tests read
    (``emit``; a script printing several tables prints that line itself, once)."""
    print()
    print(title)
    width = max(len(name) for name, _, _ in rows)
    values = [_format(value) for _, value, _ in rows]
    vwidth = max(len(v) for v in values)
    print(f"| {'figure'.ljust(width)} | {'value'.rjust(vwidth)} | note")
    print(f"|-{'-' * width}-|-{'-' * vwidth}-|-----")
    for (name, _, note), value in zip(rows, values):
        print(f"| {name.ljust(width)} | {value.rjust(vwidth)} | {note}")
    load = os.getloadavg()
    print(f"(load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on "
          f"{os.cpu_count()} CPUs; other programs share this machine)")
    if emit:
        print_result({**result, "loadavg_end": load})
    sys.stdout.flush()


def print_result(result: dict) -> None:
    print()
    print("RESULT " + json.dumps(result, ensure_ascii=False, default=str))


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# --- scratch stores ---------------------------------------------------------------------

@contextlib.contextmanager
def scratch_database(kind: str) -> Iterator[str]:
    """A database URL for a fresh, empty database that is removed afterwards."""
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="tongbao-bench-")
        try:
            yield f"sqlite:///{os.path.join(folder, 'bench.db')}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    if kind != "postgresql":
        raise ValueError("database is sqlite or postgresql")
    name = f"tongbao_bench_{uuid.uuid4().hex[:10]}"
    server = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_SERVER.rsplit("/", 1)[0].replace("+psycopg", "") + "/" + name
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@contextlib.contextmanager
def scratch_redis(db: int) -> Iterator[str]:
    url = f"{REDIS_SERVER}/{db}"
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    try:
        yield url
    finally:
        connection.flushdb()
        connection.close()


def database_version(url: str) -> str:
    if url.startswith("sqlite"):
        import sqlite3
        return f"SQLite {sqlite3.sqlite_version}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
    engine.dispose()
    return f"PostgreSQL {version}"


def redis_version(url: str) -> str:
    connection = redis.Redis.from_url(url)
    try:
        return f"Redis {connection.info('server')['redis_version']}"
    finally:
        connection.close()


# --- the gateway ------------------------------------------------------------------------

def gateway_env(database_url: str, redis_url: str, instance: str, **extra: str) -> dict[str, str]:
    """The environment a worker or web subprocess needs to use the bench's stores."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TWILIO_", "WECHAT_", "SMS_", "VOICE_", "MQTT_"))}
    env.update({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "TONGBAO_INSTANCE": instance,
                "PYTHONPATH": ROOT, "SECRET_KEY": "bench-secret", "PYTHONUNBUFFERED": "1"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def make_app(database_url: str, redis_url: str, instance: str, **config):
    from gateway import create_app
    from gateway.store import db

    app = create_app({"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                      "INSTANCE_PATH": instance, "SECRET_KEY": "bench-secret", **config})
    db.upgrade(app.extensions["engine"])
    return app


def load_county(app, residents: int, *, profiles=None) -> dict[str, int]:
    """Areas, one loudspeaker per village and ``residents`` synthetic residents (or ``profiles``)."""
    from audiences.demo import synthetic_county
    from gateway.store import roster
    from gateway.store.schema import areas, devices

    county = synthetic_county(max(residents, 1))
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": c, "name": n} for c, n in county.areas])
        conn.execute(insert(devices), [{"device_id": d, "area_code": a, "test_device": t}
                                       for d, a, t in county.devices])
        count = roster.insert_residents(conn, profiles if profiles is not None
                                        else county.residents())
    return {"residents": count, "villages": len(county.village_codes),
            "devices": len(county.devices)}


def users(app):
    """An author and an approver (the two-person rule); returns their rows."""
    from gateway.store import accounts

    with app.extensions["engine"].begin() as conn:
        for name in ("bench-author", "bench-approver"):
            if accounts.find_user(conn, name) is None:
                accounts.create_user(conn, name, name.split("-")[1], None)
        return accounts.find_user(conn, "bench-author"), accounts.find_user(conn, "bench-approver")


def create_announcement(app, *, channels: list[str], severity: str = "extreme",
                        areas: list[str] | None = None) -> int:
    """An announcement to the whole county (prefecture 450700), awaiting approval."""
    from gateway.delivery import lifecycle
    from messages.announcement import parse_announcement

    author, _ = users(app)
    data = parse_announcement({"headline": HEADLINE, "body": BODY, "instruction": INSTRUCTION,
                               "severity": severity, "urgency": "immediate",
                               "certainty": "observed", "areas": areas or ["450700"],
                               "channels": channels})
    with app.extensions["engine"].begin() as conn:
        return lifecycle.create(conn, data, author, sender="bench@tongbao.example")


def approve(app, announcement_id: int, approver=None) -> None:
    from gateway.delivery import lifecycle

    approver = approver or users(app)[1]
    with app.extensions["engine"].begin() as conn:
        lifecycle.approve(conn, announcement_id, approver)


# --- memory -----------------------------------------------------------------------------

class RssSampler:
    """Samples this process's (or process ``pid``'s) resident set size (psutil) every ``interval`` seconds."""

    def __init__(self, interval: float = 0.05, *, pid: int | None = None):
        self.interval = interval
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self.start_rss = self.peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)


def ru_maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# --- provider stand-ins in their own processes ---------------------------------------------

def _serve_fake(kind: str, conn) -> None:
    """Child process: run one fake, tell the parent its URL, record accept times until told to stop."""
    sys.path.insert(0, ROOT)
    if kind == "twilio":
        from tests.fakes.twilio_server import FakeTwilio

        class Recording(FakeTwilio):
            def __init__(self):
                super().__init__()
                self.requests = deque(maxlen=100)  # the test fake keeps every request
                self.times: list[float] = []

            def _message(self, form):
                resource_ = super()._message(form)
                with self._lock:
                    self.messages.pop(resource_["sid"], None)
                    self.times.append(time.time())
                return resource_

        fake = Recording()
        fake.__enter__()
        stop = lambda: fake.__exit__(None, None, None)  # noqa: E731
        settings = {**fake.settings, "from_number": FROM_NUMBER}
    else:
        from tests.fakes.wechat_server import FakeWechat

        class Recording(FakeWechat):
            def __init__(self):
                super().__init__()
                self.received = deque(maxlen=100)
                self.times: list[float] = []

            def _template_send(self, request):
                reply = super()._template_send(request)
                if reply.get("errcode") == 0:
                    with self._lock:
                        self.times.append(time.time())
                return reply

        fake = Recording().start()
        stop = fake.stop
        settings = {"app_id": fake.app_id, "app_secret": fake.app_secret,
                    "template_id": WECHAT_TEMPLATE, "api_base": fake.url}
    conn.send({"url": fake.url, "settings": settings})
    while True:
        message = conn.recv()
        if message == "times":
            with fake._lock:
                conn.send(list(fake.times))
        elif message == "reset":
            with fake._lock:
                fake.times.clear()
            conn.send("ok")
        else:
            break
    stop()
    conn.send("stopped")


def stop_child(conn, process: multiprocessing.Process) -> None:
    """Ask a child that serves over ``conn`` to stop; terminate it if it does not."""
    with contextlib.suppress(Exception):
        conn.send("stop")
        conn.recv()
    process.join(10)
    if process.is_alive():
        process.terminate()
        process.join(5)


class FakeProcess:
    """A FakeTwilio or FakeWechat served from its own process (so it has a core of its own)."""

    def __init__(self, kind: str):
        context = multiprocessing.get_context("spawn")
        self.kind = kind
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_serve_fake, args=(kind, child), daemon=True)

    def __enter__(self) -> "FakeProcess":
        self.process.start()
        info = self._conn.recv()
        self.url, self.settings = info["url"], info["settings"]
        self.ps = psutil.Process(self.process.pid)
        return self

    def __exit__(self, *exc_info) -> None:
        stop_child(self._conn, self.process)

    def times(self) -> list[float]:
        self._conn.send("times")
        return self._conn.recv()

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def cpu_seconds(self) -> float:
        cpu = self.ps.cpu_times()
        return cpu.user + cpu.system


def provider_env(twilio: FakeProcess | None, wechat: FakeProcess | None, **rates) -> dict[str, str]:
    """Gateway settings pointing the SMS and WeChat channels at the fakes."""
    env: dict[str, str] = {}
    if twilio:
        env.update(TWILIO_ACCOUNT_SID=twilio.settings["account_sid"],
                   TWILIO_AUTH_TOKEN=twilio.settings["auth_token"],
                   TWILIO_FROM_NUMBER=FROM_NUMBER, TWILIO_API_BASE=twilio.url)
    if wechat:
        env.update(WECHAT_APP_ID=wechat.settings["app_id"],
                   WECHAT_APP_SECRET=wechat.settings["app_secret"],
                   WECHAT_TEMPLATE_ID=WECHAT_TEMPLATE, WECHAT_API_BASE=wechat.url)
    env.update({k: str(v) for k, v in rates.items()})
    return env


def start_workers(count: int, env: dict[str, str], *, burst: bool, queues: str,
                  log_dir: str, profile_dir: str | None = None) -> list[subprocess.Popen]:
    """``flask --app wsgi worker`` subprocesses, their output to files in ``log_dir``.

    With ``profile_dir``, each runs under cProfile and writes ``worker-<n>.prof`` there."""
    processes = []
    for index in range(count):
        profiler = (["-m", "cProfile", "-o", os.path.join(profile_dir, f"worker-{index}.prof")]
                    if profile_dir else [])
        command = [sys.executable, *profiler, "-m", "flask", "--app", "wsgi", "worker",
                   "--queues", queues]
        if burst:
            command.append("--burst")
        log = open(os.path.join(log_dir, f"worker-{index}.log"), "wb")
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
    return processes


class CpuMeter:
    """CPU seconds (user + system) that named groups of processes use between ``start`` and ``stop``.

    On a shared 2-core machine this says whether a run was bound by CPU: when
    the groups together used nearly two seconds per second of wall time, no
    part of the run could have gone faster without taking CPU from another."""

    def __init__(self, groups: dict[str, list[int]]):
        self.groups = {name: [psutil.Process(pid) for pid in pids] for name, pids in groups.items()}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: sum(_cpu(process) for process in processes)
                for name, processes in self.groups.items()}

    def start(self) -> None:
        self._started, self._wall = self._now(), time.monotonic()

    def stop(self) -> None:
        ended = self._now()
        self.used = {name: ended[name] - self._started[name] for name in ended}
        self.wall = time.monotonic() - self._wall

    def summary(self) -> str:
        return (", ".join(f"{name} {seconds:.2f}" for name, seconds in self.used.items())
                + f"; together {sum(self.used.values()):.2f} CPU-s in {self.wall:.2f} s "
                f"on {os.cpu_count()} CPUs")


def _cpu(process: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        times = process.cpu_times()
        return times.user + times.system
    return 0.0


def pids_named(name: str) -> list[int]:
    """Processes of another program on this machine (the broker), to meter their CPU."""
    return [process.pid for process in psutil.process_iter(["name"])
            if process.info["name"] == name]


def server_cpu_seconds(name: str) -> float:
    """The CPU a server (its processes called ``name``) has used so far, with that of its
    processes that have ended: PostgreSQL's backends go when their connection does, and
    their CPU is then in their parent's children's times. Take the difference of two calls."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times", "ppid"]):
        times = process.info["cpu_times"]
        if process.info["name"] != name or times is None:
            continue
        total += times.user + times.system
        with contextlib.suppress(psutil.Error):
            if psutil.Process(process.info["ppid"]).name() != name:  # the server's first process
                total += times.children_user + times.children_system
    return total


def print_profiles(profile_dir: str, lines: int = 25) -> None:
    """The hot spots of every ``.prof`` file that ``start_workers`` left in ``profile_dir``."""
    import pstats

    for name in sorted(os.listdir(profile_dir)):
        if name.endswith(".prof"):
            print(f"--- {name}, by own time ---")
            pstats.Stats(os.path.join(profile_dir, name)).sort_stats("tottime").print_stats(lines)


def wait_for_workers(app, count: int, timeout: float = 60) -> None:
    """Wait until ``count`` rq workers have registered with the gateway's Redis."""
    from rq import Worker

    from gateway.delivery import queues

    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline:
            if len(Worker.all(connection=queues.connection())) >= count:
                return
            time.sleep(0.1)
    raise SystemExit("the workers did not start")


def stop_processes(processes: list[subprocess.Popen], timeout: float = 20) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most events in any half-open window of ``window`` seconds (sliding, exact)."""
    ordered = sorted(times)
    best, low = 0, 0
    for high, moment in enumerate(ordered):
        while ordered[low] <= moment - window:
            low += 1
        best = max(best, high - low + 1)
    return best
