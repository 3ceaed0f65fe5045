"""Redis and the rq queues: one queue per channel, so a slow channel never holds up another.

Jobs carry ids only. Every delivery job has an id of its own
(``deliver-<announcement>-<channel>-<batch>-<random>``, ``retry-…`` for a retry),
and a marker per batch (``tongbao:batch:<announcement>:<channel>:<batch>``) names
the latest, which lets the reconciler ask Redis whether a batch still has a live
job. A fresh id each time, because rq deletes a finished job's id (``result_ttl=0``):
a retry that a running job scheduled under that job's own id was deleted with it.
"""
from __future__ import annotations

import os
import uuid
from datetime import timedelta
from typing import Iterable

import redis
from flask import Flask, current_app
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from gateway import embedded, logs

PLAN_QUEUE = "plan"
CHANNEL_QUEUES = ("sms", "voice", "wechat", "loudspeaker", "wecom_robot", "broadcast", "webhook",
                  "weibo")
#: Roster imports too large for a request (``gateway.delivery.imports``).
IMPORT_QUEUE = "imports"
QUEUE_NAMES = (PLAN_QUEUE, *CHANNEL_QUEUES, IMPORT_QUEUE)
_WAITING = {"queued", "scheduled", "deferred"}
#: A worker process refreshes this key while it lives (see ``gateway.delivery.workers``).
HEARTBEAT_KEY = "tongbao:worker:{}"
#: A batch's marker outlives any sensible retry schedule; it is only a pointer.
MARKER_SECONDS = 7 * 24 * 3600
#: Deliveries added after a permanent failure elsewhere go to batches numbered from here.
ESCALATION_BATCH = 1_000_000


def redis_url(app: Flask) -> str:
    """The configured Redis, or the embedded one (started here if none is running)."""
    if app.config["REDIS_URL"]:
        return app.config["REDIS_URL"]
    url = embedded.running_url(app.instance_path)
    if url is None:
        server = embedded.EmbeddedRedis(app.instance_path)
        app.extensions["embedded_redis"] = server
        url = server.start()
    return url


def connection(app: Flask | None = None) -> redis.Redis:
    app = app or current_app._get_current_object()
    if "redis" not in app.extensions:
        app.extensions["redis"] = redis.Redis.from_url(redis_url(app))
    return app.extensions["redis"]


def queue(name: str, app: Flask | None = None) -> Queue:
    return Queue(name, connection=connection(app))


def job_meta(announcement_id: int | None = None) -> dict:
    """What a job's log lines say they are about: the request that queued it (or the request
    of the job that did) and its announcement; the worker binds them while it runs the job."""
    meta = {"request_id": logs.current("request_id"), "announcement_id": announcement_id}
    return {name: value for name, value in meta.items() if value is not None}


def enqueue_stop(announcement_id: int) -> None:
    """Tell every loudspeaker holding or playing this announcement to stop."""
    queue("loudspeaker").enqueue("gateway.delivery.loudspeakers.stop_loudspeakers_job", announcement_id,
                                 job_id=f"stop-{announcement_id}", result_ttl=3600,
                                 meta=job_meta(announcement_id))


def enqueue_retention() -> None:
    """Queue a retention pass on the imports queue: slow work that no notice waits for."""
    queue(IMPORT_QUEUE).enqueue("gateway.delivery.retention.run", job_id=f"retention-{uuid.uuid4().hex[:8]}",
                                result_ttl=0, job_timeout=6 * 3600, meta=job_meta())


NUDGES_JOB = "grid-nudges"


def enqueue_nudges() -> bool:
    """Queue the grid workers' nudges on the SMS queue (they are SMS) unless a run is waiting
    or running; ``fieldwork.send_nudges`` is safe twice anyway."""
    if job_is_live(NUDGES_JOB):
        return False
    queue("sms").enqueue("gateway.delivery.fieldwork.send_nudges", job_id=NUDGES_JOB,
                         result_ttl=0, job_timeout=3600, meta=job_meta())
    return True


def batch_marker(announcement_id: int, channel: str, batch: int) -> str:
    return f"tongbao:batch:{announcement_id}:{channel}:{batch}"


def plan_job_id(announcement_id: int) -> str:
    return f"plan-{announcement_id}"


def enqueue_plan(announcement_id: int) -> None:
    queue(PLAN_QUEUE).enqueue("gateway.delivery.jobs.plan_announcement", announcement_id,
                              job_id=plan_job_id(announcement_id), result_ttl=3600,
                              job_timeout=3600, meta=job_meta(announcement_id))


def enqueue_speech(announcement_id: int, queue_name: str) -> None:
    """Queue the making of a submitted announcement's speech (``jobs.prepare_speech``) on the
    queue of a channel that plays it, where its send jobs will wait behind it after approval."""
    queue(queue_name).enqueue("gateway.delivery.jobs.prepare_speech", announcement_id,
                              job_id=f"speech-{announcement_id}-{uuid.uuid4().hex[:8]}",
                              result_ttl=0, job_timeout=3600, meta=job_meta(announcement_id))


def enqueue_batches(announcement_id: int, channel: str, batches: Iterable[int]) -> None:
    """Queue one delivery job per batch, with their markers, in one round trip."""
    batches = list(batches)
    ids, meta = _fresh_ids("deliver", announcement_id, channel, batches), job_meta(announcement_id)
    jobs = [Queue.prepare_data("gateway.delivery.jobs.deliver_batch", (announcement_id, channel, batch),
                               job_id=job_id, result_ttl=0, timeout=3600, meta=meta)
            for batch, job_id in zip(batches, ids)]
    if jobs:
        target = queue(channel)
        with target.connection.pipeline() as pipe:
            for job in jobs:
                pipe.set(batch_marker(*job.args), job.job_id, ex=MARKER_SECONDS)
            target.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()


def schedule_retry(announcement_id: int, channel: str, batch: int, delay_seconds: float) -> None:
    job_id, = _fresh_ids("retry", announcement_id, channel, [batch])
    connection().set(batch_marker(announcement_id, channel, batch), job_id, ex=MARKER_SECONDS)
    queue(channel).enqueue_in(timedelta(seconds=delay_seconds), "gateway.delivery.jobs.deliver_batch",
                              announcement_id, channel, batch, job_id=job_id, result_ttl=0,
                              meta=job_meta(announcement_id))


def _fresh_ids(kind: str, announcement_id: int, channel: str, batches: list[int]) -> list[str]:
    """A fresh job id per batch. The random parts come from one read of the system's
    randomness, not one each: on the planner's queueing thread (``planner.Queuer``) every
    read gave the interpreter lock away."""
    randomness = os.urandom(4 * len(batches)).hex()
    return [f"{kind}-{announcement_id}-{channel}-{batch}-{randomness[8 * index:8 * index + 8]}"
            for index, batch in enumerate(batches)]


def batch_has_live_job(announcement_id: int, channel: str, batch: int) -> bool:
    """Whether the batch's latest job is waiting, or running on a worker that is alive."""
    job_id = connection().get(batch_marker(announcement_id, channel, batch))
    return job_id is not None and job_is_live(job_id.decode())


def plan_has_live_job(announcement_id: int) -> bool:
    return job_is_live(plan_job_id(announcement_id))


def job_is_live(job_id: str) -> bool:
    """Whether the job is waiting, or running on a worker that is alive."""
    try:
        job = Job.fetch(job_id, connection=connection())
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == "started":
        return bool(job.worker_name) and worker_alive(job.worker_name)
    return status in _WAITING


def worker_alive(name: str) -> bool:
    return bool(connection().exists(HEARTBEAT_KEY.format(name)))


def pause_channel(channel: str, seconds: float, reason: str) -> None:
    """Stop sending on a channel until its provider account may send again."""
    connection().set(f"tongbao:paused:{channel}", reason, ex=max(1, int(seconds)))


def channel_pause(channel: str) -> tuple[int, str] | None:
    """(seconds left, reason) while a channel is paused."""
    return channel_pauses([channel]).get(channel)


def channel_pauses(channels: list[str]) -> dict[str, tuple[int, str]]:
    """The paused ones among ``channels``: (seconds left, reason) each, in one round trip."""
    with connection().pipeline() as pipe:
        for channel in channels:
            pipe.get(f"tongbao:paused:{channel}").ttl(f"tongbao:paused:{channel}")
        answers = pipe.execute()
    return {channel: (ttl, reason.decode())
            for channel, reason, ttl in zip(channels, answers[::2], answers[1::2])
            if reason is not None and ttl > 0}
