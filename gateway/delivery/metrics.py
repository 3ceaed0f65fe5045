"""What ``/metrics`` tells Prometheus about the pipeline, read at each scrape.

Everything here is counted from the database and Redis when Prometheus asks, not kept in the
process: every web process, on every host, answers the same, and nothing is lost when a
process restarts. (Values a process keeps, under gunicorn's several processes, are summed by
``prometheus_client``'s multiprocess mode: ``gateway/web/metrics.py``.)

| series | labels | what |
|---|---|---|
| ``tongbao_deliveries`` | channel, status | deliveries now in each status, all notices |
| ``tongbao_oldest_unsent_delivery_age_seconds`` | | how long the oldest delivery of a live notice not yet handed to its provider (planned, queued, sending) has waited since its last change; 0 when none |
| ``tongbao_devices`` | state | loudspeakers online, offline, or never heard from (unknown) |
| ``tongbao_queue_jobs`` | queue | jobs waiting in each rq queue |
| ``tongbao_queue_oldest_job_age_seconds`` | queue | how long the job at the head of each queue has waited; 0 when empty |
| ``tongbao_queue_scheduled_jobs`` | queue | jobs waiting for their time (retries) |
| ``tongbao_workers`` | queue | live workers serving each queue (their heartbeats) |
| ``tongbao_provider_send_seconds`` (summary: ``_count``, ``_sum``) | channel | sends tried, and the seconds spent in the providers' calls for them, rate-limit waits left out: ``rate(_sum) / rate(_count)`` is the mean time a send takes |
| ``tongbao_provider_errors_total`` | channel, code | sends the provider refused or that failed, by the provider's error code (``unknown`` when it gave none) |
| ``tongbao_rate_limit_wait_seconds_total`` | channel | seconds workers waited for the shared rate limit before sending |
| ``tongbao_source_up`` | source | 1 when the database / Redis answered this scrape, 0 when not |

The last three are counted by the workers as they send, in Redis (``SEND_KEYS``), so workers
on every host add to the same counters; a Redis emptied by a restart starts them again from
zero, which Prometheus's ``rate`` takes as a counter reset.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Callable, Iterator, Sequence

import redis
from flask import Flask
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, Metric,
                                   SummaryMetricFamily)
from prometheus_client.registry import Collector
from rq import Queue
from rq.job import Job
from rq.exceptions import NoSuchJobError
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import SQLAlchemyError

from channels import registry
from channels.base import ChannelError, Receipt
from gateway.delivery import health, lifecycle, queues
from gateway.store.db import as_utc, utcnow
from gateway.store.ledger.statuses import PENDING, STATUSES
from gateway.store.schema import announcements, deliveries, delivery_counts, devices

log = logging.getLogger(__name__)
#: Not yet handed to the provider: the part of the pipeline that can be stuck here.
UNSENT = (*PENDING, "sending")
#: Hashes the workers count their sends in: field channel (errors: "channel code").
SEND_KEYS = {"sends": "tongbao:metrics:sends", "seconds": "tongbao:metrics:send-seconds",
             "errors": "tongbao:metrics:provider-errors",
             "waits": "tongbao:metrics:rate-wait-seconds"}


class Waits:
    """The rate limiter's ``wait_turn`` as a send's ``pace``, adding up the seconds waited."""

    def __init__(self, wait_turn: Callable[[], float]):
        self.wait_turn = wait_turn
        self.seconds = 0.0

    def __call__(self) -> None:
        self.seconds += self.wait_turn()


def record_sends(channel: str, outcomes: Sequence[Receipt | ChannelError], *, waited: float,
                 sending: float) -> None:
    """Count a batch's sends, their errors by code and the time they took, for /metrics.
    Never fails a job: while Redis is away the counts are not kept."""
    errors = Counter(outcome.code or "unknown" for outcome in outcomes
                     if isinstance(outcome, ChannelError))
    try:
        with queues.connection().pipeline(transaction=False) as pipe:
            pipe.hincrby(SEND_KEYS["sends"], channel, len(outcomes))
            pipe.hincrbyfloat(SEND_KEYS["seconds"], channel, max(0.0, sending))
            pipe.hincrbyfloat(SEND_KEYS["waits"], channel, waited)
            for code, count in errors.items():
                pipe.hincrby(SEND_KEYS["errors"], f"{channel} {code}", count)
            pipe.execute()
    except (redis.RedisError, OSError) as error:
        log.info("send counts for /metrics not kept: Redis unreachable (%s)", error)


class PipelineCollector(Collector):
    def __init__(self, app: Flask):
        self.app = app

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tongbao_source_up", "1 when the source answered this scrape",
                               labels=["source"])
        try:
            with self.app.extensions["engine"].connect() as conn:
                found = list(database_metrics(conn))
        except SQLAlchemyError:
            found = []
        up.add_metric(["database"], 1 if found else 0)
        yield from found
        client = health.redis_client(self.app)
        try:
            found = list(redis_metrics(client)) if client is not None else []
        except (redis.RedisError, OSError):
            found = []
        up.add_metric(["redis"], 1 if found else 0)
        yield from found
        yield up


def database_metrics(conn: Connection) -> Iterator[Metric]:
    counts = GaugeMetricFamily("tongbao_deliveries", "Deliveries now in each status",
                               labels=["channel", "status"])
    for channel, status, count in conn.execute(
            select(delivery_counts.c.channel, delivery_counts.c.status,
                   func.sum(delivery_counts.c.count))
            # The table also keeps other running counts (the residents reached, channel "*").
            .where(delivery_counts.c.channel.in_(registry.CHANNEL_NAMES),
                   delivery_counts.c.status.in_(STATUSES))
            .group_by(delivery_counts.c.channel, delivery_counts.c.status)
            .order_by(delivery_counts.c.channel, delivery_counts.c.status)):
        counts.add_metric([channel, status], int(count or 0))
    yield counts

    waiting = GaugeMetricFamily(
        "tongbao_oldest_unsent_delivery_age_seconds",
        "Seconds the oldest delivery of a live notice not yet handed to its provider has waited")
    waiting.add_metric([], _oldest_unsent_age(conn))
    yield waiting

    states = GaugeMetricFamily("tongbao_devices", "Loudspeakers by presence", labels=["state"])
    present = {True: 0, False: 0, None: 0}
    for online, count in conn.execute(select(devices.c.online, func.count())
                                      .group_by(devices.c.online)):
        present[None if online is None else bool(online)] += count
    for state, online in (("online", True), ("offline", False), ("unknown", None)):
        states.add_metric([state], present[online])
    yield states


def _oldest_unsent_age(conn: Connection) -> float:
    # The running counts find the notices with such rows; only their rows are read.
    live = [row.announcement_id for row in conn.execute(
        select(delivery_counts.c.announcement_id).distinct()
        .join(announcements, announcements.c.id == delivery_counts.c.announcement_id)
        .where(delivery_counts.c.status.in_(UNSENT), delivery_counts.c.count > 0,
               announcements.c.state.in_(lifecycle.LIVE_STATES)))]
    if not live:
        return 0.0
    since = conn.execute(
        select(func.min(func.coalesce(deliveries.c.updated_at, announcements.c.sent)))
        .join(announcements, announcements.c.id == deliveries.c.announcement_id)
        .where(deliveries.c.announcement_id.in_(live), deliveries.c.status.in_(UNSENT))
    ).scalar()
    return max(0.0, (utcnow() - as_utc(since)).total_seconds()) if since else 0.0


def redis_metrics(client: redis.Redis) -> Iterator[Metric]:
    depth = GaugeMetricFamily("tongbao_queue_jobs", "Jobs waiting in each queue", labels=["queue"])
    oldest = GaugeMetricFamily("tongbao_queue_oldest_job_age_seconds",
                               "Seconds the job at the head of each queue has waited",
                               labels=["queue"])
    scheduled = GaugeMetricFamily("tongbao_queue_scheduled_jobs",
                                  "Jobs waiting for their time (retries)", labels=["queue"])
    now = datetime.now(timezone.utc)
    for name in queues.QUEUE_NAMES:
        queue = Queue(name, connection=client)
        depth.add_metric([name], queue.count)
        oldest.add_metric([name], _head_age(queue, client, now))
        scheduled.add_metric([name], queue.scheduled_job_registry.count)
    workers = GaugeMetricFamily("tongbao_workers", "Live workers serving each queue",
                                labels=["queue"])
    for name, count in health.live_workers(client).items():
        workers.add_metric([name], count)
    yield from (depth, oldest, scheduled, workers)
    yield from send_metrics(client)


def send_metrics(client: redis.Redis) -> Iterator[Metric]:
    with client.pipeline(transaction=False) as pipe:
        for key in SEND_KEYS.values():
            pipe.hgetall(key)
        counts = {name: {field.decode(): float(value) for field, value in found.items()}
                  for name, found in zip(SEND_KEYS, pipe.execute())}
    sends = SummaryMetricFamily(
        "tongbao_provider_send_seconds",
        "Sends tried, and seconds in the providers' calls for them (rate-limit waits left out)",
        labels=["channel"])
    waits = CounterMetricFamily("tongbao_rate_limit_wait_seconds",
                                "Seconds workers waited for the shared rate limit",
                                labels=["channel"])
    for channel in registry.CHANNEL_NAMES:
        sends.add_metric([channel], count_value=counts["sends"].get(channel, 0),
                         sum_value=counts["seconds"].get(channel, 0.0))
        waits.add_metric([channel], counts["waits"].get(channel, 0.0))
    errors = CounterMetricFamily("tongbao_provider_errors",
                                 "Sends that failed, by the provider's error code",
                                 labels=["channel", "code"])
    for field, count in sorted(counts["errors"].items()):
        channel, _, code = field.partition(" ")
        errors.add_metric([channel, code], count)
    yield from (sends, errors, waits)


def _head_age(queue: Queue, client: redis.Redis, now: datetime) -> float:
    for job_id in queue.get_job_ids(0, 4):  # a job deleted meanwhile: the next one
        try:
            enqueued = Job.fetch(job_id, connection=client).enqueued_at
        except NoSuchJobError:
            continue
        if enqueued is not None:
            if enqueued.tzinfo is None:
                enqueued = enqueued.replace(tzinfo=timezone.utc)
            return max(0.0, (now - enqueued).total_seconds())
    return 0.0
