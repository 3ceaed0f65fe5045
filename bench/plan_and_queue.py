"""Plan and queue: approval of an ``extreme`` announcement to a whole county → every delivery
written to the ledger and every batch job queued.

    .venv/bin/python -m bench.plan_and_queue --residents 1000000 --database sqlite
    .venv/bin/python -m bench.plan_and_queue --residents 1000000 --database postgresql
    .venv/bin/python -m bench.plan_and_queue --residents 1000000 --roster both

A synthetic county (``audiences.demo.synthetic_county``) is loaded into a fresh
database; an extreme announcement to the prefecture over every channel is
created. A *separate process* (spawned, so its memory is the plan's alone)
approves it and runs the plan job in-process (``gateway.delivery.jobs.plan_announcement``
in an app context) against the real Redis on a dedicated database number.

Peak memory is that process's peak RSS, two ways: ``getrusage(RUSAGE_SELF).ru_maxrss``
(kernel high-water mark over the whole process, imports included) and psutil RSS
sampled every 50 ms during approval + planning. The target is judged on the larger of the
two, or on the sampled one alone when ``ru_maxrss`` is no higher than the bench process's own
mark at the spawn (Linux keeps it through exec, so it is then the bench's, not the plan's).

Floor, same run, same database and Redis (issue #23's tight floor): the very rows the
plan wrote (read back from the ledger beforehand, untimed, as complete rows) inserted by
the bare driver into a table of the ledger's shape (its columns, its unique key and every
other index it has) in ONE transaction: ``executemany`` on SQLite, ``COPY`` (psycopg 3's
``cursor.copy``, the text made before the clock starts) on PostgreSQL; plus one job-sized
Redis hash and queue push per rq job the plan queued. The plan commits as it goes (so a crash loses little, and the first
batches go out early): the same insert committed at the plan's commit points is
timed too, and the difference is what those commits cost.

``--roster multilingual`` gives residents spoken languages (90 % Mandarin, 7 %
Cantonese, 3 % Zhuang); ``--roster both`` measures both rosters in one run.
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import marshal
import multiprocessing
import os
import pstats
import sys
import tempfile
import time
from typing import Iterator

import redis
from sqlalchemy import Column, MetaData, String, func, select, type_coerce

from bench import common
from gateway.store import ledger

TARGET_RATIO = 2.0
TARGET_RSS = 256 * 2**20
CHANNELS = ["sms", "voice", "wechat", "loudspeaker"]
FLOOR_CHUNK = 5000
FLOOR_TABLE = "bench_floor_rows"
#: The columns the plan writes (``ledger.write``); the others start empty.
FLOOR_COLUMNS = ("announcement_id", *ledger.ROW_FIELDS, "status", "attempts", "updated_at")
#: ``--roster multilingual``: spoken languages in these shares of every hundred residents.
SPOKEN_SHARES = (("zh", 90), ("yue", 7), ("za", 3))


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
    # Linux keeps a process's ru_maxrss through exec: a spawned child starts with this
    # process's high-water mark, which after a PostgreSQL floor (its COPY text) is larger
    # than the plan. A child whose mark is no higher than that says nothing of its own.
    inherited = common.ru_maxrss_bytes()
    process.start()
    result = parent.recv()
    process.join()
    if process.exitcode:
        raise RuntimeError(f"the plan process exited with {process.exitcode}")
    result["ru_maxrss_inherited"] = result["ru_maxrss"] <= inherited
    return result


def floor_table(metadata: MetaData):
    """A table of the ledger's shape: its columns, unique key and every other index, named apart."""
    from sqlalchemy import Index, Table, UniqueConstraint

    from gateway.store.schema import deliveries

    columns = [Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable,
                      server_default=c.server_default.arg if c.server_default else None)
               for c in deliveries.columns]
    indexes = [Index(index.name.replace("deliveries", FLOOR_TABLE), *(c.name for c in index.columns),
                     **index.dialect_kwargs) for index in deliveries.indexes]
    unique = [UniqueConstraint(*(c.name for c in constraint.columns), name=f"uq_{FLOOR_TABLE}")
              for constraint in deliveries.constraints if isinstance(constraint, UniqueConstraint)]
    assert len(indexes) == len(deliveries.indexes) >= 4 and len(unique) == 1
    return Table(FLOOR_TABLE, metadata, *columns, *unique, *indexes)


def dump_plan_rows(engine, announcement_id: int, folder: str) -> tuple[str, int]:
    """The plan's rows as the floor inserts them, complete (the columns the plan writes), in
    the order the plan wrote them, marshalled to a file ``FLOOR_CHUNK`` at a time so the
    floor's timing holds no reading and little memory. Returns the file and the row count."""
    from gateway.store.schema import deliveries

    path, count = os.path.join(folder, "plan-rows.marshal"), 0
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn, open(path, "wb") as out:
        # The time as stored (SQLite: sqlite3's text), as text for COPY on PostgreSQL:
        # marshal takes no datetimes.
        stamp = (type_coerce(deliveries.c.updated_at, String) if sqlite
                 else deliveries.c.updated_at)
        result = conn.execution_options(stream_results=True, yield_per=FLOOR_CHUNK).execute(
            select(*(deliveries.c[name] for name in FLOOR_COLUMNS[:-1]), stamp)
            .where(deliveries.c.announcement_id == announcement_id).order_by(deliveries.c.id))
        for part in result.partitions():
            marshal.dump([(*row[:-1], row[-1] if sqlite else row[-1].isoformat(" "))
                          for row in part], out)
            count += len(part)
    return path, count


def plan_rows(path: str) -> Iterator[list[tuple]]:
    with open(path, "rb") as source:
        while True:
            try:
                yield marshal.load(source)
            except EOFError:
                return


def db_floor(engine, path: str, commit_after_recipients: list[int] = ()) -> float:
    """Seconds for the bare driver to insert the dumped rows into the floor table in one
    transaction (``executemany``; ``COPY`` on PostgreSQL), reading the file not counted. With
    ``commit_after_recipients``: committed as the plan did, after each of those resident ids.

    SQLite works only inside the driver's calls, so its clock stops while the file is read.
    PostgreSQL's cannot: its server goes on inserting what it was sent while the client
    reads, and a clock stopped then left most of the server's work out (a million
    residents' floor of 5.5 s from a call that took 18.6 s, with 17.9 s of server CPU in
    it). There every row is made ``COPY`` text first, and the clock runs from the first
    byte sent to the last commit."""
    metadata = MetaData()
    floor_table(metadata)
    metadata.create_all(engine)
    raw = engine.raw_connection()
    try:
        parts = _parts(path, list(commit_after_recipients))
        if engine.dialect.name == "postgresql":
            elapsed = _copy_floor(raw, _as_copy_text(parts))
        else:
            elapsed = _executemany_floor(raw, parts)
    finally:
        raw.close()
    metadata.drop_all(engine)
    return elapsed


def _parts(path: str, commits: list[int]) -> Iterator[tuple[list[tuple], bool]]:
    """The dumped rows a chunk at a time, split where the plan committed: ``(rows, commit
    after them)``; the last part is followed by a commit."""
    for chunk in plan_rows(path):
        low = 0
        for index, row in enumerate(chunk):
            if commits and row[2] > commits[0]:
                yield chunk[low:index], True
                commits.pop(0)
                low = index
        yield chunk[low:], False
    yield [], True


def _executemany_floor(raw, parts) -> float:
    cursor, elapsed = raw.cursor(), 0.0
    statement = (f"INSERT INTO {FLOOR_TABLE} ({', '.join(FLOOR_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * len(FLOOR_COLUMNS))})")
    for rows, commit in parts:
        started = time.perf_counter()
        if rows:
            cursor.executemany(statement, rows)
        if commit:
            raw.commit()
        elapsed += time.perf_counter() - started
    cursor.close()
    return elapsed


def _as_copy_text(parts) -> list[list[str]]:
    """The parts as ``COPY`` text, a list of pieces per transaction (made before timing)."""
    transactions, pieces = [], []
    for rows, commit in parts:
        if rows:
            pieces.append("".join("\t".join(map(ledger.copy_field, row)) + "\n" for row in rows))
        if commit:
            transactions.append(pieces)
            pieces = []
    return transactions


def _copy_floor(raw, transactions: list[list[str]]) -> float:
    statement = f"COPY {FLOOR_TABLE} ({', '.join(FLOOR_COLUMNS)}) FROM STDIN"
    started = time.perf_counter()
    with raw.cursor() as cursor:
        for pieces in transactions:
            with cursor.copy(statement) as copy:
                for piece in pieces:
                    copy.write(piece)
            raw.commit()
    return time.perf_counter() - started


def commit_points(engine, residents: int) -> list[int]:
    """The resident ids after which the plan committed: transactions of one chunk of
    residents, doubling up to ``planner.COMMIT_RESIDENTS`` (``planner._plan_areas``)."""
    from gateway.delivery import planner
    from gateway.store.schema import residents as table

    positions, size, at = [], planner.CHUNK, 0
    while at + size < residents:
        at += size
        positions.append(at)
        size = min(2 * size, planner.COMMIT_RESIDENTS)
    with engine.connect() as conn:
        ids = [row.id for row in conn.execute(select(table.c.id).order_by(table.c.id))]
    return [ids[position - 1] for position in positions]


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
    parser.add_argument("--roster", choices=["monolingual", "multilingual", "both"],
                        default="monolingual",
                        help="residents' spoken languages: all Mandarin, or 90/7/3 %% "
                             "Mandarin/Cantonese/Zhuang; both: one after the other")
    parser.add_argument("--profile", action="store_true", help="cProfile the plan; print hot spots")
    parser.add_argument("--sqlite-cache-mib", type=int, default=0,
                        help="experiment: PRAGMA cache_size for the plan's SQLite connections")
    args = parser.parse_args(argv)
    rosters = ["monolingual", "multilingual"] if args.roster == "both" else [args.roster]
    results = [measure(args, roster) for roster in rosters]
    result = results[0]
    if len(results) == 2:
        result["multilingual"] = results[1]
        result["multilingual_ratio_vs_monolingual"] = (results[1]["ratio_to_floor"]
                                                       / result["ratio_to_floor"])
        print(f"\nmultilingual / monolingual ratio to floor: "
              f"{result['multilingual_ratio_vs_monolingual']:.3f} (plan seconds "
              f"{results[1]['seconds']:.2f} vs {result['seconds']:.2f})")
    common.print_result(result)
    return result


def multilingual(profiles):
    """The roster's residents who read Chinese, speaking Mandarin, Cantonese or Zhuang in
    ``SPOKEN_SHARES`` (by their position, so every run has the same roster)."""
    spoken = [language for language, share in SPOKEN_SHARES for _ in range(share)]
    for index, profile in enumerate(profiles):
        yield (dataclasses.replace(profile, spoken_language=spoken[index % len(spoken)])
               if profile.language == "zh" else profile)


def measure(args, roster: str) -> dict:
    """Load a county with this roster into a fresh database, plan, time the floor; print."""
    from audiences.demo import synthetic_county
    from gateway.delivery import queues as gateway_queues
    from gateway.store.schema import deliveries, residents

    with common.scratch_database(args.database) as database_url, \
            common.scratch_redis(args.redis_db) as redis_url, \
            tempfile.TemporaryDirectory(prefix="tongbao-bench-instance-") as instance:
        app = common.make_app(database_url, redis_url, instance)
        engine = app.extensions["engine"]
        started = time.perf_counter()
        profiles = (multilingual(synthetic_county(max(args.residents, 1)).residents())
                    if roster == "multilingual" else None)
        county = common.load_county(app, args.residents, profiles=profiles)
        load_seconds = time.perf_counter() - started
        announcement_id = common.create_announcement(app, channels=CHANNELS, severity="extreme")
        versions = [common.database_version(database_url), common.redis_version(redis_url)]
        with engine.connect() as conn:
            spoken = dict(conn.execute(select(residents.c.spoken_language, func.count())
                                       .group_by(residents.c.spoken_language)).all())
        print(f"loaded {county['residents']:,} residents ({roster}), {county['devices']:,} "
              f"loudspeakers in {load_seconds:.1f} s; planning …", flush=True)

        server_before = common.server_cpu_seconds("postgres")
        plan = run_plan(database_url, redis_url, instance, announcement_id, args.profile,
                        args.sqlite_cache_mib)
        plan["server_cpu"] = common.server_cpu_seconds("postgres") - server_before
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

        path, dumped = dump_plan_rows(engine, announcement_id, instance)
        server_before = common.server_cpu_seconds("postgres")
        floor_db = db_floor(engine, path)
        floor_server_cpu = common.server_cpu_seconds("postgres") - server_before
        floor_commits = db_floor(engine, path, commit_points(engine, county["residents"]))
        floor_jobs = redis_jobs_floor(redis_url, queued_jobs)
        engine.dispose()

    floor = floor_db + floor_jobs
    tightest = min(floor_db, floor_commits) + floor_jobs
    elapsed = plan["elapsed"]
    peak = (plan["sampled_peak_rss"] if plan["ru_maxrss_inherited"]
            else max(plan["ru_maxrss"], plan["sampled_peak_rss"]))
    full = args.residents >= 1_000_000
    from gateway.delivery import planner
    redo = elapsed * min(planner.COMMIT_RESIDENTS, county["residents"]) / county["residents"]
    insert = "COPY" if args.database == "postgresql" else "executemany"
    rows = [
        ("database", versions[0], versions[1] + (f"; EXPERIMENT: SQLite cache_size "
                                                  f"{args.sqlite_cache_mib} MiB"
                                                  if args.sqlite_cache_mib else "")),
        ("residents", county["residents"], f"{county['villages']:,} villages, one loudspeaker "
         f"each; roster {roster}, spoken: " + ", ".join(
             f"{language} {count:,}" for language, count in sorted(spoken.items()))),
        ("deliveries written", written, ", ".join(f"{c} {n:,}" for c, n in sorted(totals.items()))),
        ("rq jobs queued", queued_jobs, f"expected {expected_jobs:,} (batches of {batch_size})"),
        ("approval → all written and queued (s)", elapsed, ""),
        ("deliveries/s", delivered / elapsed, ""),
        ("plan process CPU (s)", plan["cpu"], "user + system of the plan process over the same span "
         "(the database server's own CPU not included)"),
        *([("PostgreSQL server CPU, plan (s)", plan["server_cpu"],
            "every postgres process over the plan process's life: its reads, COPYs, commits"),
           ("PostgreSQL server CPU, floor (s)", floor_server_cpu,
            "every postgres process over the one-transaction floor below")]
          if args.database == "postgresql" else []),
        ("peak RSS, ru_maxrss (MiB)", plan["ru_maxrss"] / 2**20,
         "the bench process's own mark, inherited through exec: not the plan's (the sampled "
         "peak counts)" if plan["ru_maxrss_inherited"] else
         "getrusage high-water mark of the plan process (imports included)"),
        ("peak RSS, psutil sampled (MiB)", plan["sampled_peak_rss"] / 2**20,
         f"every 50 ms during the plan; {plan['start_rss'] / 2**20:.0f} MiB before it"),
        (f"floor: same rows, one transaction, {insert} (s)", floor_db,
         f"{dumped:,} rows, ledger's unique key and {len(deliveries.indexes)} indexes; "
         f"{dumped / floor_db:,.0f} rows/s"),
        ("floor: Redis, one job hash per rq job (s)", floor_jobs,
         f"{queued_jobs:,} job-sized hashes + queue pushes"),
        ("floor total (s)", floor, "DB rows + Redis jobs"),
        ("ratio to floor", elapsed / floor,
         f"target ≤ {TARGET_RATIO:.0f}× at 1M: {verdict_or_na(elapsed / floor <= TARGET_RATIO, full)}"),
        ("same rows committed at the plan's commits (s)", floor_commits,
         f"committing as the plan does changes the floor by {floor_commits - floor_db:+.3f} s "
         f"(transactions of {planner.CHUNK:,} residents doubling to {planner.COMMIT_RESIDENTS:,})"),
        ("ratio to the tighter of the two floors", elapsed / tightest,
         "the same rows and jobs; whichever commit pattern inserted them faster"),
        ("crash-resume redo, at most (s)", redo,
         f"a plan killed just before a commit redoes ≤ {planner.COMMIT_RESIDENTS:,} residents' rows"),
        ("peak RSS target", f"{peak / 2**20:.0f} MiB",
         f"≤ {TARGET_RSS // 2**20} MiB: {verdict_or_na(peak <= TARGET_RSS, full)}"),
    ]
    result = {"script": "plan_and_queue", "database": args.database, "roster": roster,
              "residents": county["residents"], "spoken_languages": spoken, "deliveries": written, "planned": delivered,
              "floor_rows": dumped,
              "jobs_queued": queued_jobs, "jobs_expected": expected_jobs, "per_channel": totals,
              "seconds": elapsed, "cpu_seconds": plan["cpu"], "deliveries_per_second": delivered / elapsed,
              "ru_maxrss_bytes": plan["ru_maxrss"], "sampled_peak_rss_bytes": plan["sampled_peak_rss"],
              "ru_maxrss_inherited": plan["ru_maxrss_inherited"], "peak_rss_bytes": peak,
              "floor_db_seconds": floor_db, "floor_redis_seconds": floor_jobs,
              "floor_seconds": floor, "ratio_to_floor": elapsed / floor,
              "floor_db_with_commits_seconds": floor_commits, "resume_redo_seconds": redo,
              "ratio_to_tightest_floor": elapsed / tightest,
              **({"server_cpu_seconds": plan["server_cpu"],
                  "floor_server_cpu_seconds": floor_server_cpu}
                 if args.database == "postgresql" else {}),
              "load_seconds": load_seconds, "machine": common.machine(), "versions": versions,
              "loadavg_end": list(os.getloadavg())}
    common.print_table(f"Plan and queue: {county['residents']:,} residents, extreme, "
                       f"{args.database}, {roster} roster", rows, result, emit=False)
    if plan["profile"]:
        print(plan["profile"])
    return result


def verdict_or_na(ok: bool, applies: bool) -> str:
    return common.verdict(ok) if applies else ("within" if ok else "over") + " (target is for 1M)"


if __name__ == "__main__":
    main()
