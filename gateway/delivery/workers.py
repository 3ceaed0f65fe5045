"""The worker process: its name, its heartbeat, the leases it holds, the reconciler it runs.

A worker shows it is alive by a Redis key it refreshes every few seconds
(``queues.HEARTBEAT_KEY``, holding the queues it serves: rq's own worker registry is not
written again after a Redis restart, this key is), and holds the deliveries it is sending by a lease
in the database that it renews as often. A row is taken back from a worker
only when both have lapsed, so neither a Redis restart (heartbeats gone,
leases fine) nor a database outage (leases lapse, heartbeats fine) makes a live
worker's sends look abandoned; a killed worker loses both within a lease.

One worker of all the hosts' runs the reconciler every ``RECONCILE_SECONDS``:
the one holding ``RECONCILE_LOCK``, a Redis key its heartbeat renews and which
lapses three beats after the holder dies or is cut off, when another worker
takes it. So what a crash or an outage stranded is sent without anyone running
it, and more hosts never reconcile at once. The pass runs in a thread of its
own: one waiting on the database (a row lock a cut-off host's session still
holds) must not stop the heartbeat, or this live worker would look dead.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from datetime import timedelta
from typing import Sequence

import redis
from flask import Flask, current_app
from rq import SimpleWorker
from rq.worker import DequeueStrategy
from sqlalchemy.exc import SQLAlchemyError

from gateway import logs
from gateway.delivery import queues, reconciler
from gateway.store import ledger

log = logging.getLogger(__name__)
RECONCILE_LOCK = "tongbao:reconcile-lock"
#: Longest wait between two tries to reach Redis or the database again.
MAX_BACKOFF_SECONDS = 30
#: How long a stopping worker waits for its scheduler process before killing it.
SCHEDULER_STOP_SECONDS = 5

_name = {"pid": None, "value": ""}
_held: set[int] = set()
_abandoned: set[int] = set()
_held_lock = threading.Lock()


def process_name() -> str:
    """This process's name: the owner of its leases and its rq worker's name."""
    if _name["pid"] != os.getpid():
        _name.update(pid=os.getpid(),
                     value=f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
    return _name["value"]


def lease(app: Flask) -> timedelta:
    return timedelta(seconds=app.config["STALE_SENDING_SECONDS"])


def hold(ids) -> None:
    """Rows this process is sending: the heartbeat renews their lease."""
    with _held_lock:
        _held.update(ids)


def let_go(ids) -> None:
    with _held_lock:
        _held.difference_update(ids)


def held() -> list[int]:
    with _held_lock:
        return sorted(_held)


def abandon(ids) -> None:
    """Rows a job stopped holding without knowing their outcome (it failed mid-send):
    their leases are released, now or by the heartbeat once the database answers."""
    ids = set(ids)
    with _held_lock:
        _abandoned.update(ids)
    try:
        release_abandoned(current_app._get_current_object())
    except SQLAlchemyError:
        pass


def release_abandoned(app: Flask) -> None:
    with _held_lock:
        ids = sorted(_abandoned)
    if ids:
        with app.extensions["engine"].begin() as conn:
            ledger.release(conn, ids, process_name())
        with _held_lock:
            _abandoned.difference_update(ids)


def beat_interval(app: Flask) -> float:
    """A quarter of the lease, at most 5 s: three beats may fail before the lease lapses."""
    return max(0.5, min(5.0, app.config["STALE_SENDING_SECONDS"] / 4))


class Outages:
    """Runs steps that need Redis or the database: logs the first failure of an outage and
    its end, never raises."""

    def __init__(self):
        self.failing: set[str] = set()

    def __call__(self, what: str, step, *args) -> None:
        try:
            step(*args)
        except (redis.RedisError, SQLAlchemyError, OSError) as error:
            if what not in self.failing:
                log.warning("%s unreachable from the heartbeat (%s); trying again", what, error)
            self.failing.add(what)
            return
        if what in self.failing:
            log.warning("%s reachable again", what)
            self.failing.discard(what)


_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder and ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLock:
    """A lock one process of all the hosts' holds: a Redis key naming its holder, lapsing
    ``ttl_seconds`` after the holder last renewed it."""

    def __init__(self, connection: redis.Redis, key: str, owner: str, ttl_seconds: float):
        self.key = key
        self.owner = owner
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self._hold = connection.register_script(_HOLD)
        self._release = connection.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lock if nobody holds it, or keep it; whether this process holds it."""
        return bool(self._hold(keys=[self.key], args=[self.owner, self.ttl_ms, 1]))

    def renew(self) -> bool:
        """Keep the lock if this process holds it (never takes it)."""
        return bool(self._hold(keys=[self.key], args=[self.owner, self.ttl_ms, 0]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.owner])


def reconcile_lock(app: Flask) -> RedisLock:
    """The reconciler's lock, lapsing three beats after its holder stopped renewing it."""
    return RedisLock(queues.connection(app), RECONCILE_LOCK, process_name(),
                     3 * beat_interval(app))


class Reconciling(threading.Thread):
    """Runs the reconciler every ``RECONCILE_SECONDS`` while this process holds its lock."""

    def __init__(self, app: Flask, outages: Outages):
        super().__init__(name="tongbao-reconciler", daemon=True)
        self.app = app
        self.outages = outages
        self.period = app.config["RECONCILE_SECONDS"]
        self.lock = reconcile_lock(app)
        self.stopping = threading.Event()
        self._passing_since: float | None = None

    def run(self) -> None:
        while not self.stopping.wait(self.period):
            with self.app.app_context():
                try:
                    self.outages("reconcile", self._pass)
                except Exception:  # noqa: BLE001 - the next pass may well succeed
                    log.exception("the reconciler's pass failed")
        try:
            self.lock.release()
        except redis.RedisError:
            pass  # it lapses by itself

    def _pass(self) -> None:
        if not self.lock.acquire():
            return
        self._passing_since = time.monotonic()
        try:
            outcome = reconciler.reconcile()
        finally:
            self._passing_since = None
        if any(outcome.values()):
            log.warning("reconciler: %s", outcome)

    def stuck(self) -> bool:
        """A pass has run two periods: the heartbeat stops renewing the lock, so another
        worker may take it (a pass is safe twice at once; waiting for ever is not)."""
        since = self._passing_since
        return since is not None and time.monotonic() - since > 2 * self.period


class Heartbeat(threading.Thread):
    """Refreshes the heartbeat key, the held leases and the reconciler's lock (when held),
    and starts the reconciler's thread; an outage of Redis or the database is logged and
    outlived."""

    def __init__(self, app: Flask, queue_names: Sequence[str]):
        super().__init__(name="tongbao-heartbeat", daemon=True)
        self.app = app
        self.queue_names = ",".join(queue_names)
        #: The rq worker serving now (not in burst mode), whose scheduler the beat looks after.
        self.worker: GatewayWorker | None = None
        self.stopping = threading.Event()
        self._guarded = Outages()
        self.reconciling = Reconciling(app, self._guarded)

    def run(self) -> None:
        self.reconciling.start()
        interval = beat_interval(self.app)
        while not self.stopping.wait(interval):
            with self.app.app_context():
                self._guarded("redis", self._beat, interval)
                self._guarded("database", self._renew)

    def stop(self) -> None:
        self.stopping.set()
        self.reconciling.stopping.set()

    def _beat(self, interval: float) -> None:
        queues.connection(self.app).set(queues.HEARTBEAT_KEY.format(process_name()),
                                        self.queue_names,
                                        px=int(interval * 3000))
        if not self.reconciling.stuck():
            self.reconciling.lock.renew()
        worker = self.worker
        if worker is not None:
            worker.keep_scheduler()

    def _renew(self) -> None:
        release_abandoned(self.app)
        ids = held()
        if ids:
            with self.app.extensions["engine"].begin() as conn:
                ledger.renew(conn, ids, process_name(), lease(self.app))


class GatewayWorker(SimpleWorker):
    """rq's in-process worker, remembering that it was asked to stop (SIGTERM, Ctrl-C):
    rq's loop ends the same way for that as for an error it cannot handle."""

    stop_asked = False

    def execute_job(self, job, queue):
        """Run the job with its lines carrying the job id and what its meta says it is about
        (the web request that queued it, its announcement)."""
        meta = job.meta or {}
        with logs.bound(job_id=job.id, request_id=meta.get("request_id"),
                        announcement_id=meta.get("announcement_id")):
            log.info("job %s started: %s", job.id, job.func_name)
            return super().execute_job(job, queue)

    def request_stop(self, signum, frame):
        self.stop_asked = True
        super().request_stop(signum, frame)

    def stop_scheduler(self):
        """Stop rq's scheduler process, killing it if SIGTERM does not stop it soon.

        rq waits for it without a limit, but a SIGTERM that arrives just after the fork, before
        the scheduler sets its own handler, runs the handler it inherited, which only notes a
        stop request meant for the worker: the scheduler then never ends, nor would the worker."""
        process = self.scheduler._process if self.scheduler else None
        if process is None or not process.pid:
            return
        try:
            os.kill(process.pid, signal.SIGTERM)
        except OSError:
            pass
        process.join(SCHEDULER_STOP_SECONDS)
        if process.is_alive():
            log.warning("the scheduler process %s did not stop; killing it", process.pid)
            process.kill()
            process.join()

    def keep_scheduler(self) -> None:
        """Start rq's scheduler process again when it is gone, as soon as Redis answers.

        It exits when Redis goes away, and rq itself starts it again (or takes over the lock
        of a dead worker's scheduler) only at its maintenance pass, every 10 minutes and after
        an idle wait for a job of up to 7: retries would stand still that long."""
        scheduler = self.scheduler
        if scheduler is None or self.stop_asked or self._stop_requested:
            return
        if scheduler._process is None or not scheduler._process.is_alive():
            scheduler.acquire_locks(auto_start=True)


def run(app: Flask, queue_names: list[str], *, burst: bool) -> None:
    """Serve the queues until stopped, outliving Redis restarts: rq's loop ends on an
    error it cannot handle, and is started again after a growing pause."""
    heartbeat = Heartbeat(app, queue_names)
    heartbeat.start()
    backoff = 1.0
    try:
        while True:
            worker = None
            try:
                worker = GatewayWorker([queues.queue(name, app) for name in queue_names],
                                       connection=queues.connection(app), name=process_name())
                heartbeat.worker = None if burst else worker
                worked = worker.work(burst=burst, with_scheduler=True,
                                     dequeue_strategy=DequeueStrategy.ROUND_ROBIN)
                if burst or worker.stop_asked:
                    return
                backoff = 1.0 if worked else backoff
                log.warning("the rq worker loop ended; starting it again in %.0f s", backoff)
            except (redis.ConnectionError, redis.TimeoutError, ValueError) as error:
                if worker is not None and worker.stop_asked:
                    return  # told to stop, and Redis is gone too (it was stopped first)
                # ValueError: rq still has this name registered from before the outage.
                log.warning("worker cannot reach Redis (%s); trying again in %.0f s", error, backoff)
                _forget(worker)
            finally:
                heartbeat.worker = None
            time.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
    finally:
        heartbeat.stop()


def _forget(worker: GatewayWorker | None) -> None:
    """Drop rq's record of this worker, so the next one may take its name."""
    if worker is None:
        return
    try:
        worker.register_death()
    except redis.RedisError:
        pass
