"""Benchmark: importing a county's roster as the console does, against a bulk insert of the same rows.

What is measured (issue 23, item 2):

* A roster CSV of ``--residents`` synthetic residents (``audiences.demo.synthetic_county``,
  written by ``audiences.residents.write_roster_csv``: every column, E.164 phones, openids,
  grids) is uploaded and imported as a job, the console's way: ``imports.save_upload`` keeps
  the file, ``imports.start`` queues it on the ``imports`` queue, a ``flask worker`` process
  (started beforehand and idle, so its start-up is not counted) runs it in one transaction.
  The figure is upload → the import record saying ``done``, polled every 20 ms; the
  record's ``stage``/``done``/``total`` updates seen on the way are counted.
* Peak memory of the importing worker process: ``ru_maxrss`` (kernel high-water mark, read
  with ``wait4`` when it exits; start-up and imports included) and psutil RSS sampled every
  50 ms; its RSS idle before the import is shown too.
* Stage breakdown, in this process after the job, each over the same file: ``parse`` (the
  CSV decoded and split into cells: ``Roster.cells``), ``validate`` (every row checked into
  a profile, duplicates included: ``Roster.residents``, minus ``parse``); ``insert and
  match`` is the job's time minus the two.
* Floor, same run: the same rows (prepared in memory beforehand, not timed) inserted into a
  fresh database's ``residents`` table (the migrations' own: same columns, same four
  indexes) with the driver's ``executemany`` in one transaction (SQLite).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from sqlalchemy import insert

from bench import common

POLL_SECONDS = 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--redis-db", type=int, default=common.DEFAULT_REDIS_DB)
    parser.add_argument("--profile", action="store_true",
                        help="run the worker under cProfile and print its hot spots")
    args = parser.parse_args()
    print(f"machine: {common.machine()}")
    with common.scratch_database("sqlite") as url, common.scratch_redis(args.redis_db) as redis_url, \
            tempfile.TemporaryDirectory(prefix="tongbao-bench-roster-") as scratch:
        result = run(url, redis_url, scratch, args)
    report(result)


def run(url: str, redis_url: str, scratch: str, args) -> dict:
    from audiences.demo import synthetic_county
    from audiences.residents import write_roster_csv

    county = synthetic_county(args.residents)
    path = os.path.join(scratch, "roster.csv")
    started = time.monotonic()
    write_roster_csv(county.residents(), path)
    print(f"roster of {args.residents:,} rows, {os.path.getsize(path) / 2**20:.1f} MiB, "
          f"written in {time.monotonic() - started:.1f} s")
    instance = os.path.join(scratch, "instance")
    app = common.make_app(url, redis_url, instance)
    load_areas(app, county)
    job = import_as_job(app, url, redis_url, instance, path, scratch, args.profile)
    stages = stage_breakdown(app, path)
    with common.scratch_database("sqlite") as floor_url:
        floor = bulk_insert_floor(floor_url, redis_url, os.path.join(scratch, "floor"), county)
    return {"residents": args.residents, "database": common.database_version(url),
            "redis": common.redis_version(redis_url), **job, **stages, "floor_seconds": floor,
            "ratio_to_floor": job["seconds"] / floor}


def load_areas(app, county) -> None:
    from gateway.store.schema import areas, grids

    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": code, "name": name} for code, name in county.areas])
        conn.execute(insert(grids), [{"code": code, "name": name} for code, name in county.grids])


def import_as_job(app, url: str, redis_url: str, instance: str, path: str, scratch: str,
                  profile: bool) -> dict:
    from gateway.delivery import imports

    profile_dir = os.path.join(scratch, "profiles") if profile else None
    if profile_dir:
        os.makedirs(profile_dir)
    env = common.gateway_env(url, redis_url, instance)
    [worker] = common.start_workers(1, env, burst=False, queues="imports", log_dir=scratch,
                                    profile_dir=profile_dir)
    try:
        common.wait_for_workers(app, 1)
        sampler = common.RssSampler(pid=worker.pid)
        idle_rss = sampler.peak
        with open(path, "rb") as handle:
            data = handle.read()
        with sampler, app.test_request_context():
            started = time.monotonic()
            import_id = imports.save_upload(data, actor="bench", filename="roster.csv")
            imports.start(import_id)
            seen, record = watch(import_id)
            seconds = time.monotonic() - started
    finally:
        ru_maxrss = stop_worker(worker)
    if profile_dir:
        common.print_profiles(profile_dir)
    if record["status"] != "done":
        raise SystemExit(f"the import did not succeed: {record}")
    imported = record["result"]["added"]
    return {"seconds": seconds, "imported": imported, "rows_per_second": imported / seconds,
            "progress_updates": len(seen), "progress_stages": sorted({stage for stage, _, _ in seen if stage}),
            "final_progress": [record["done"], record["total"]],
            "worker_ru_maxrss_bytes": ru_maxrss, "worker_sampled_peak_rss_bytes": sampler.peak,
            "worker_idle_rss_bytes": idle_rss}


def watch(import_id: str) -> tuple[list[tuple[str, int, int]], dict]:
    """Poll the import record until it ends; the distinct progress states seen on the way."""
    from gateway.delivery import imports

    seen: list[tuple[str, int, int]] = []
    while True:
        record = imports.status(import_id)
        if record["status"] in ("done", "failed"):
            return seen, record
        state = (record["stage"], record["done"], record["total"])
        if record["status"] == "running" and (not seen or seen[-1] != state):
            seen.append(state)
        time.sleep(POLL_SECONDS)


def stop_worker(worker: subprocess.Popen) -> int:
    """Stop the worker and return its ``ru_maxrss`` in bytes (from ``wait4``)."""
    worker.terminate()
    try:
        _, status, usage = os.wait4(worker.pid, 0)
    except ChildProcessError:
        worker.wait()
        return 0
    worker.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024  # Linux reports KiB


def stage_breakdown(app, path: str) -> dict:
    """Seconds to parse the file into cells, and to validate every row, each in this process."""
    from audiences.residents import Roster
    from gateway.store import roster

    with app.extensions["engine"].connect() as conn:
        registry = roster.known_areas(conn)
    started = time.monotonic()
    rows = sum(1 for _ in Roster(path, known_area=registry.__contains__).cells())
    parse = time.monotonic() - started
    started = time.monotonic()
    profiles = sum(1 for _ in Roster(path, known_area=registry.__contains__).residents())
    checked = time.monotonic() - started
    assert rows == profiles, (rows, profiles)
    return {"parse_seconds": parse, "validate_seconds": checked - parse}


def bulk_insert_floor(url: str, redis_url: str, instance: str, county) -> float:
    """The same rows into an empty ``residents`` table in one transaction with ``executemany``."""
    from gateway.store.roster import RESIDENT_ROW_COLUMNS, resident_row

    app = common.make_app(url, redis_url, instance)
    columns = (*RESIDENT_ROW_COLUMNS, "pending_review")
    rows = [(*resident_row(profile).values(), False) for profile in county.residents()]
    statement = (f"INSERT INTO residents ({', '.join(columns)}) "
                 f"VALUES ({', '.join('?' * len(columns))})")
    raw = app.extensions["engine"].raw_connection()
    try:
        cursor = raw.cursor()
        started = time.monotonic()
        cursor.execute("BEGIN")
        cursor.executemany(statement, rows)
        raw.commit()
        seconds = time.monotonic() - started
        cursor.execute("SELECT count(*) FROM residents")
        assert cursor.fetchone()[0] == len(rows)
    finally:
        raw.close()
        app.extensions["engine"].dispose()
    return seconds


def report(result: dict) -> None:
    mib = 2**20
    parse, validate = result["parse_seconds"], result["validate_seconds"]
    common.print_table(f"Roster import as a job, {result['residents']:,} rows ({result['database']})", [
        ("upload → done (the job)", result["seconds"], f"{result['imported']:,} residents added"),
        ("rows/s", result["rows_per_second"], ""),
        ("progress updates seen", result["progress_updates"],
         f"stages {', '.join(result['progress_stages']) or '-'}; polled every {POLL_SECONDS * 1000:.0f} ms; "
         f"at the end {result['final_progress'][0]:,} of {result['final_progress'][1]:,}"),
        ("worker peak RSS, ru_maxrss (MiB)", result["worker_ru_maxrss_bytes"] / mib,
         f"idle before the import {result['worker_idle_rss_bytes'] / mib:.1f} MiB; target ≤ 256 MiB: "
         f"{common.verdict(result['worker_ru_maxrss_bytes'] <= 256 * mib)}"),
        ("worker peak RSS, sampled (MiB)", result["worker_sampled_peak_rss_bytes"] / mib, "psutil, 50 ms"),
        ("stage: parse (CSV → cells)", parse, "in the bench process, same file"),
        ("stage: validate (cells → residents)", validate, "in the bench process, same file"),
        ("stage: insert and match (the rest)", result["seconds"] - parse - validate, "job minus the two"),
        ("floor: executemany, one transaction", result["floor_seconds"],
         "same rows, same table and indexes, fresh database"),
        ("ratio to floor", result["ratio_to_floor"], f"target ≤ 3: {common.verdict(result['ratio_to_floor'] <= 3)}"),
    ], result)


if __name__ == "__main__":
    sys.path.insert(0, common.ROOT)
    main()
