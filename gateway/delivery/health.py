"""Is this gateway ready to deliver? The checks behind ``/readyz`` and ``flask --app wsgi doctor``.

Ready means: the database answers and its schema is current; Redis answers; the loudspeaker
broker takes a login (when one is configured); on every queue at least one worker is alive
(its heartbeat key ``queues.HEARTBEAT_KEY``, naming its queues, is fresh: ``workers``); rq's scheduler holds
every queue's lock (retries move); the loudspeaker signing key is there (when a broker is
configured). The reconciler runs in every live worker, so live workers mean it runs too.

All checks run at once, each in a thread, and whatever has not answered after
``CHECK_SECONDS`` counts as failed: a probe never hangs on a server that does not answer.
Details say what is wrong in words, never an address with its password, a key or a person.
"""
from __future__ import annotations

import os
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

import redis
from flask import Flask
from rq.scheduler import RQScheduler
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from channels.loudspeaker.protocol import SigningKey, transport
from gateway import embedded
from gateway.delivery import queues
from gateway.store import db

#: Longest wait for any one check; the whole probe takes no longer.
CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: What an operator does about it (for ``doctor``); empty when ok.
    fix: str = ""


def redis_client(app: Flask) -> redis.Redis | None:
    """A client with short timeouts on the configured Redis or the running embedded one; never
    starts a server (``queues.redis_url`` would)."""
    url = app.config["REDIS_URL"] or embedded.running_url(app.instance_path)
    if url is None:
        return None
    return redis.Redis.from_url(url, socket_connect_timeout=CHECK_SECONDS / 2,
                                socket_timeout=CHECK_SECONDS / 2)


_NO_REDIS = "start Redis, or correct REDIS_URL"


def check_database(app: Flask) -> Check:
    engine = app.extensions["engine"]
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        db.check_schema(engine)
    except db.SchemaMissing:
        return Check("database", False, "the schema is not up to date",
                     "run `flask --app wsgi db upgrade`")
    except (SQLAlchemyError, OSError) as error:
        return Check("database", False, f"unreachable ({type(error).__name__})",
                     "start the database server, or correct DATABASE_URL")
    return Check("database", True, f"answers ({engine.dialect.name}), schema current")


def check_redis(app: Flask) -> Check:
    client = redis_client(app)
    if client is None:
        return Check("redis", False, "REDIS_URL is unset and no embedded Redis is running",
                     "set REDIS_URL (production), or start `flask --app wsgi serve`")
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        return Check("redis", False, f"unreachable ({type(error).__name__})", _NO_REDIS)
    return Check("redis", True, "answers")


def check_broker(app: Flask) -> Check:
    if not app.config["MQTT_URL"]:
        return Check("broker", True, "no broker configured (MQTT_URL unset): loudspeakers "
                     + ("go to the outbox" if app.config["OUTBOX_FALLBACK"] else "are not used"))
    try:
        address = transport.BrokerAddress.parse(app.config["MQTT_URL"])
    except ValueError as error:
        return Check("broker", False, str(error).split(",")[0],
                     "write MQTT_URL as mqtt://user:password@host:port or mqtts://…")
    connected = transport.ConnectedSignal()
    client = transport.new_client(
        address, f"tongbao-probe-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    client.connect_timeout = CHECK_SECONDS / 2
    client.on_connect = lambda _c, _u, _f, reason_code, _p: connected.connected(reason_code)
    try:
        transport.start(client, address)
        if not connected.wait(CHECK_SECONDS / 2):
            refusal = connected.last_refusal
            return Check("broker", False, f"refused the login ({refusal})" if refusal
                         else "no answer to the login",
                         "check the gateway's account in MQTT_URL against the broker's "
                         "password file (docs/mosquitto/README.md)" if refusal
                         else "start the MQTT broker, or correct MQTT_URL")
        client.disconnect()
    except OSError as error:
        return Check("broker", False, f"unreachable ({type(error).__name__})",
                     "start the MQTT broker, or correct MQTT_URL")
    finally:
        client.loop_stop()
    return Check("broker", True, "takes the gateway's login")


def live_workers(connection: redis.Redis) -> dict[str, int]:
    """Queue name -> workers serving it whose heartbeat is fresh (the heartbeat key holds the
    worker's queues; rq's own registry forgets a worker across a Redis restart)."""
    keys = list(connection.scan_iter(match=queues.HEARTBEAT_KEY.format("*"), count=1000))
    served = [value.decode().split(",") for value in connection.mget(keys) if value] if keys else []
    return {queue: sum(queue in names for names in served) for queue in queues.QUEUE_NAMES}


def check_workers(app: Flask) -> Check:
    client = redis_client(app)
    if client is None:
        return Check("workers", False, "no Redis to find them in", _NO_REDIS)
    try:
        counts = live_workers(client)
    except (redis.RedisError, OSError) as error:
        return Check("workers", False, f"Redis unreachable ({type(error).__name__})", _NO_REDIS)
    detail = ", ".join(f"{queue}: {count}" for queue, count in counts.items())
    idle = [queue for queue, count in counts.items() if not count]
    if idle:
        return Check("workers", False, f"no live worker on {', '.join(idle)} ({detail})",
                     "start workers: `flask --app wsgi worker` (systemd: tongbao-worker@1)")
    return Check("workers", True, f"live workers per queue: {detail}")


def check_scheduler(app: Flask) -> Check:
    client = redis_client(app)
    if client is None:
        return Check("scheduler", False, "no Redis to find it in", _NO_REDIS)
    try:
        held = client.pipeline(transaction=False)
        for name in queues.QUEUE_NAMES:
            held.exists(RQScheduler.get_locking_key(name))
        unheld = [name for name, lock in zip(queues.QUEUE_NAMES, held.execute()) if not lock]
    except (redis.RedisError, OSError) as error:
        return Check("scheduler", False, f"Redis unreachable ({type(error).__name__})", _NO_REDIS)
    if unheld:
        return Check("scheduler", False, f"no scheduler for {', '.join(unheld)}: retries "
                     "there would not move", "start a worker; each runs the scheduler")
    return Check("scheduler", True, "rq's scheduler holds every queue; the reconciler runs "
                 "in the live workers")


def check_signing_key(app: Flask) -> Check:
    if not app.config["MQTT_URL"]:
        return Check("signing_key", True, "not needed: no broker configured")
    path = app.config["SIGNING_KEY_PATH"]
    try:
        with open(path, "rb") as handle:
            SigningKey.from_pem(handle.read())
    except FileNotFoundError:
        return Check("signing_key", False, "missing",
                     f"run `flask --app wsgi speakers key` once to make it at {path}, or copy "
                     "the key the other hosts use (every host must sign with the same key)")
    except (OSError, ValueError, TypeError) as error:
        return Check("signing_key", False, f"unreadable ({type(error).__name__})",
                     f"make {path} readable by the gateway's user, or restore it from backup")
    return Check("signing_key", True, "present")


READINESS: tuple[Callable[[Flask], Check], ...] = (
    check_database, check_redis, check_broker, check_workers, check_scheduler, check_signing_key)


def run(app: Flask, checks=READINESS) -> list[Check]:
    """Run the checks side by side; one that has not answered in ``CHECK_SECONDS`` failed."""
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="tongbao-check")
    futures = [pool.submit(check, app) for check in checks]
    wait(futures, timeout=CHECK_SECONDS)
    pool.shutdown(wait=False, cancel_futures=True)
    results = []
    for check, future in zip(checks, futures):
        name = check.__name__.removeprefix("check_")
        if not future.done():
            results.append(Check(name, False, f"no answer within {CHECK_SECONDS:.0f} s",
                                 "see why that server is slow or unreachable"))
        elif future.exception() is not None:
            results.append(Check(name, False, f"failed ({type(future.exception()).__name__})",
                                 "see the gateway's log"))
        else:
            results.append(future.result())
    return results
