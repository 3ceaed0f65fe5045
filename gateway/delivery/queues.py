"""Redis and the rq queues: one queue per channel, so a slow channel never holds up another.

Jobs carry ids only. A delivery job is named after its batch
(``deliver-<announcement>-<channel>-<batch>``), which lets the reconciler ask
Redis whether a batch still has a live job.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Iterable

import redis
from flask import Flask, current_app
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

from gateway import embedded

PLAN_QUEUE = "plan"
CHANNEL_QUEUES = ("sms", "voice", "wechat", "loudspeaker", "wecom_robot")
QUEUE_NAMES = (PLAN_QUEUE, *CHANNEL_QUEUES)
_LIVE = {"queued", "started", "scheduled", "deferred"}
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


def enqueue_stop(announcement_id: int) -> None:
    """Tell every loudspeaker holding or playing this announcement to stop."""
    queue("loudspeaker").enqueue("gateway.delivery.loudspeakers.stop_loudspeakers_job", announcement_id,
                                 job_id=f"stop-{announcement_id}", result_ttl=3600)


def deliver_job_id(announcement_id: int, channel: str, batch: int) -> str:
    return f"deliver-{announcement_id}-{channel}-{batch}"


def retry_job_id(announcement_id: int, channel: str, batch: int) -> str:
    return f"retry-{announcement_id}-{channel}-{batch}"


def plan_job_id(announcement_id: int) -> str:
    return f"plan-{announcement_id}"


def enqueue_plan(announcement_id: int) -> None:
    queue(PLAN_QUEUE).enqueue("gateway.delivery.jobs.plan_announcement", announcement_id,
                              job_id=plan_job_id(announcement_id), result_ttl=3600,
                              job_timeout=3600)


def enqueue_batches(announcement_id: int, channel: str, batches: Iterable[int]) -> None:
    """Queue one delivery job per batch, in one round trip."""
    jobs = [Queue.prepare_data("gateway.delivery.jobs.deliver_batch", (announcement_id, channel, batch),
                               job_id=deliver_job_id(announcement_id, channel, batch),
                               result_ttl=0, timeout=3600)
            for batch in batches]
    if jobs:
        target = queue(channel)
        with target.connection.pipeline() as pipe:
            target.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()


def schedule_retry(announcement_id: int, channel: str, batch: int, delay_seconds: float) -> None:
    queue(channel).enqueue_in(timedelta(seconds=delay_seconds), "gateway.delivery.jobs.deliver_batch",
                              announcement_id, channel, batch,
                              job_id=retry_job_id(announcement_id, channel, batch), result_ttl=0)


def batch_has_live_job(announcement_id: int, channel: str, batch: int) -> bool:
    return _any_live(deliver_job_id(announcement_id, channel, batch),
                     retry_job_id(announcement_id, channel, batch))


def plan_has_live_job(announcement_id: int) -> bool:
    return _any_live(plan_job_id(announcement_id))


def _any_live(*job_ids: str) -> bool:
    for job_id in job_ids:
        try:
            job = Job.fetch(job_id, connection=connection())
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) in _LIVE:
            return True
    return False


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
