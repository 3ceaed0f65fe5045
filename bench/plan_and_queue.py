"""Plan and queue: approval of an ``extreme`` announcement to a whole county → every delivery
written to the ledger and every batch job queued.

    .venv/bin/python -m bench.plan_and_queue --residents 1000000 --database sqlite
    .venv/bin/python -m bench.plan_and_queue --residents 1000000 --database postgresql

A synthetic county (``audiences.demo.synthetic_county``) is loaded into a fresh
database; an extreme announcement to the prefecture over every channel is
created. A *separate process* (spawned, so its memory is the plan's alone)
approves it and runs the plan job in-process (``gateway.delivery.jobs.plan_announcement``
in an app context) against the real Redis on a dedicated database number.

Peak memory is that process's peak RSS, two ways: ``getrusage(RUSAGE_SELF).ru_maxrss``
(kernel high-water mark over the whole process, imports included) and psutil RSS
sampled every 50 ms during approval + planning.

Floor, same run, same database and Redis: raw DB-API ``executemany`` of the same
number of bare rows into a table of the same shape (columns, unique constraint,
batch index), 5,000 rows per statement and commit; plus pipelining the same number
of entries into Redis (one RPUSH each, 5,000 per round trip). The strict floor
(the same rows, plus only as many job-sized hashes as the plan queued jobs) is
printed too.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import os
import pstats
import sys
import tempfile
import time
from datetime import datetime, timezone

import redis
from sqlalchemy import Column, MetaData, func, select

from bench import common

TARGET_SECONDS = 60.0
TARGET_RATIO = 3.0
TARGET_RSS = 512 * 2**20
CHANNELS = ["sms", "voice", "wechat", "loudspeaker"]
FLOOR_CHUNK = 5000


def _plan_child(conn, database_url: str, redis_url: str, instance: str, announcement_id: int,
                profile: bool, cache_mib: int = 0) -> None:
    sys.path.insert(0, common.ROOT)
    from sqlalchemy import event

    from gateway.delivery import jobs, queues

    app = common.make_app(database_url, redis_url, instance)
    if cache_mib and database_url.startswith("sqlite"):
        # Experiment only (--sqlite-cache-mib): a larger SQLite page cache than the default 2 MiB.
        engine = app.extensions["engine"]
        event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute(
            f"PRAGMA cache_size=-{cache_mib * 1024}"))
        engine.dispose()
    _, approver = common.users(app)
    with app.app_context():
        queues.connection().ping()
        start_rss = common.RssSampler().start_rss
        profiler = cProfile.Profile() if profile else None
        with common.RssSampler() as sampler:
            cpu_before = time.process_time()
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            common.approve(app, announcement_id, approver)
            totals = jobs.plan_announcement(announcement_id)
            if profiler:
                profiler.disable()
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_before
    hot = None
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        out.write("\n--- by own time ---\n")
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
        hot = out.getvalue()
    conn.send({"elapsed": elapsed, "cpu": cpu, "totals": totals, "start_rss": start_rss,
               "sampled_peak_rss": sampler.peak, "ru_maxrss": common.ru_maxrss_bytes(),
               "profile": hot})
    app.extensions["engine"].dispose()


def run_plan(database_url, redis_url, instance, announcement_id, profile=False,
             cache_mib=0) -> dict:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_plan_child,
                              args=(child, database_url, redis_url, instance, announcement_id,
                                    profile, cache_mib))
    process.start()
    result = parent.recv()
    process.join()
    if process.exitcode:
        raise RuntimeError(f"the plan process exited with {process.exitcode}")
    return result


def floor_table(metadata: MetaData):
    """A table with the ledger's shape (columns, unique constraint, batch index), named apart."""
    from sqlalchemy import Index, Table, UniqueConstraint

    from gateway.store.schema import deliveries

    columns = [Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable,
                      server_default=c.server_default.arg if c.server_default else None)
               for c in deliveries.columns]
    return Table("bench_floor_rows", metadata, *columns,
                 UniqueConstraint("announcement_id", "channel", "recipient_id",
                                  name="uq_bench_floor_rows"),
                 Index("ix_bench_floor_rows_batch", "announcement_id", "channel", "batch"))


def db_floor(engine, rows: int) -> float:
    """Seconds to insert ``rows`` bare rows with the driver's executemany, 5,000 per commit."""
    metadata = MetaData()
    table = floor_table(metadata)
    metadata.create_all(engine)
    sqlite = engine.dialect.name == "sqlite"
    marker = "?" if sqlite else "%s"
    # The columns the planner writes (ledger.add); the others start empty.
    names = [c.name for c in table.columns if c.name not in (
        "id", "provider_id", "last_error", "lease_owner", "lease_until", "unknown_outcomes")]
    statement = (f"INSERT INTO bench_floor_rows ({', '.join(names)}) "
                 f"VALUES ({', '.join([marker] * len(names))})")
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else now
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        for low in range(0, rows, FLOOR_CHUNK):
            chunk = [(1, "sms", i, f"+86139{i:08d}", "zh", i // 200, "queued", 0, stamp)
                     for i in range(low, min(rows, low + FLOOR_CHUNK))]
            cursor.executemany(statement, chunk)
            raw.commit()
        elapsed = time.perf_counter() - started
        cursor.close()
    finally:
        raw.close()
    metadata.drop_all(engine)
    return elapsed


def redis_entries_floor(url: str, entries: int) -> float:
    """Seconds to pipeline ``entries`` RPUSHes (one per entry), 5,000 per round trip."""
    connection = redis.Redis.from_url(url)
    key = "bench:floor:entries"
    started = time.perf_counter()
    for number, low in enumerate(range(0, entries, FLOOR_CHUNK)):
        with connection.pipeline(transaction=False) as pipe:
            for i in range(low, min(entries, low + FLOOR_CHUNK)):
                pipe.rpush(key, f"sms:{i}:{i // 200}")
            if number % 50 == 49:
                pipe.delete(key)  # keep the server's memory bounded
            pipe.execute()
    elapsed = time.perf_counter() - started
    connection.delete(key)
    connection.close()
    return elapsed


def redis_jobs_floor(url: str, jobs: int) -> float:
    """Seconds to pipeline ``jobs`` rq-job-sized hashes plus their queue pushes."""
    connection = redis.Redis.from_url(url)
    payload = os.urandom(120)
    started = time.perf_counter()
    for low in range(0, jobs, FLOOR_CHUNK):
        with connection.pipeline(transaction=False) as pipe:
            for i in range(low, min(jobs, low + FLOOR_CHUNK)):
                job = f"bench:floor:job:{i}"
                pipe.hset(job, mapping={"data": payload, "status": "queued", "origin": "sms",
                                        "created_at": "2026-01-01T00:00:00.000000Z",
                                        "enqueued_at": "2026-01-01T00:00:00.000000Z",
                                        "description": f"gateway.delivery.jobs.deliver_batch(1, 'sms', {i})",
                                        "timeout": "3600", "result_ttl": "0"})
                pipe.rpush("bench:floor:queue", job)
            pipe.execute()
    elapsed = time.perf_counter() - started
    keys = [f"bench:floor:job:{i}" for i in range(jobs)]
    for low in range(0, len(keys), FLOOR_CHUNK):
        connection.delete(*keys[low:low + FLOOR_CHUNK])
    connection.delete("bench:floor:queue")
    connection.close()
    return elapsed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis-db", type=int, default=common.DEFAULT_REDIS_DB)
    parser.add_argument("--profile", action="store_true", help="cProfile the plan; print hot spots")
    parser.add_argument("--sqlite-cache-mib", type=int, default=0,
                        help="experiment: PRAGMA cache_size for the plan's SQLite connections")
    args = parser.parse_args(argv)

    from gateway.delivery import queues as gateway_queues
    from gateway.store.schema import deliveries

    with common.scratch_database(args.database) as database_url, \
            common.scratch_redis(args.redis_db) as redis_url, \
            tempfile.TemporaryDirectory(prefix="tongbao-bench-instance-") as instance:
        app = common.make_app(database_url, redis_url, instance)
        engine = app.extensions["engine"]
        started = time.perf_counter()
        county = common.load_county(app, args.residents)
        load_seconds = time.perf_counter() - started
        announcement_id = common.create_announcement(app, channels=CHANNELS, severity="extreme")
        versions = [common.database_version(database_url), common.redis_version(redis_url)]
        print(f"loaded {county['residents']:,} residents, {county['devices']:,} loudspeakers in "
              f"{load_seconds:.1f} s; planning …", flush=True)

        plan = run_plan(database_url, redis_url, instance, announcement_id, args.profile,
                        args.sqlite_cache_mib)
        totals = plan["totals"]
        delivered = sum(totals.values())
        with engine.connect() as conn:
            written = conn.execute(select(func.count()).select_from(deliveries)
                                   .where(deliveries.c.announcement_id == announcement_id)
                                   ).scalar_one()
        batch_size = app.config["BATCH_SIZE"]
        expected_jobs = sum(-(-n // batch_size) for n in totals.values())
        with app.app_context():
            queued_jobs = sum(gateway_queues.queue(channel).count
                              for channel in gateway_queues.CHANNEL_QUEUES)
        redis.Redis.from_url(redis_url).flushdb()  # the queued jobs are not run here

        floor_db = db_floor(engine, delivered)
        floor_entries = redis_entries_floor(redis_url, delivered)
        floor_jobs = redis_jobs_floor(redis_url, queued_jobs)
        engine.dispose()

    floor = floor_db + floor_entries
    strict_floor = floor_db + floor_jobs
    elapsed = plan["elapsed"]
    peak = max(plan["ru_maxrss"], plan["sampled_peak_rss"])
    full = args.residents >= 1_000_000 and args.database == "sqlite"
    rows = [
        ("database", versions[0], versions[1] + (f"; EXPERIMENT: SQLite cache_size "
                                                  f"{args.sqlite_cache_mib} MiB"
                                                  if args.sqlite_cache_mib else "")),
        ("residents", county["residents"], f"{county['villages']:,} villages, one loudspeaker each"),
        ("deliveries written", written, ", ".join(f"{c} {n:,}" for c, n in sorted(totals.items()))),
        ("rq jobs queued", queued_jobs, f"expected {expected_jobs:,} (batches of {batch_size})"),
        ("approval → all written and queued (s)", elapsed,
         f"target ≤ {TARGET_SECONDS:.0f} s at 1M on SQLite: {verdict_or_na(elapsed <= TARGET_SECONDS, full)}"),
        ("deliveries/s", delivered / elapsed, ""),
        ("plan process CPU (s)", plan["cpu"], "user + system of the plan process over the same span "
         "(the database server's own CPU not included)"),
        ("peak RSS, ru_maxrss (MiB)", plan["ru_maxrss"] / 2**20,
         "getrusage high-water mark of the plan process (imports included)"),
        ("peak RSS, psutil sampled (MiB)", plan["sampled_peak_rss"] / 2**20,
         f"every 50 ms during the plan; {plan['start_rss'] / 2**20:.0f} MiB before it"),
        ("floor: DB executemany of same rows (s)", floor_db, f"{delivered / floor_db:,.0f} rows/s"),
        ("floor: Redis pipeline, same entries (s)", floor_entries,
         f"{delivered / floor_entries:,.0f} entries/s"),
        ("floor total (s)", floor, "DB rows + Redis entries"),
        ("ratio to floor", elapsed / floor,
         f"target ≤ {TARGET_RATIO:.0f}×: {verdict_or_na(elapsed / floor <= TARGET_RATIO, full)}"),
        ("strict floor: rows + job hashes (s)", strict_floor,
         f"Redis {queued_jobs:,} job-sized hashes in {floor_jobs:.3f} s"),
        ("ratio to strict floor", elapsed / strict_floor, ""),
        ("peak RSS target", f"{peak / 2**20:.0f} MiB",
         f"≤ 512 MiB: {verdict_or_na(peak <= TARGET_RSS, full)}"),
    ]
    result = {"script": "plan_and_queue", "database": args.database,
              "residents": county["residents"], "deliveries": written, "planned": delivered,
              "jobs_queued": queued_jobs, "jobs_expected": expected_jobs, "per_channel": totals,
              "seconds": elapsed, "cpu_seconds": plan["cpu"], "deliveries_per_second": delivered / elapsed,
              "ru_maxrss_bytes": plan["ru_maxrss"], "sampled_peak_rss_bytes": plan["sampled_peak_rss"],
              "floor_db_seconds": floor_db, "floor_redis_seconds": floor_entries,
              "floor_seconds": floor, "ratio_to_floor": elapsed / floor,
              "strict_floor_seconds": strict_floor, "ratio_to_strict_floor": elapsed / strict_floor,
              "load_seconds": load_seconds, "machine": common.machine(), "versions": versions}
    common.print_table(f"Plan and queue: {county['residents']:,} residents, extreme, "
                       f"{args.database}", rows, result)
    if plan["profile"]:
        print(plan["profile"])
    return result


def verdict_or_na(ok: bool, applies: bool) -> str:
    return common.verdict(ok) if applies else ("within" if ok else "over") + " (target is for 1M on SQLite)"


if __name__ == "__main__":
    main()
