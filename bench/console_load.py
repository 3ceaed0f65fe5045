"""Console and API under load: the status endpoint of an announcement with 1,000,000 deliveries.

    .venv/bin/python -m bench.console_load --deliveries 1000000 --clients 50 --database sqlite

The ledger rows and their running counts are written directly in bulk (no real send): SMS,
voice and WeChat deliveries to overlapping residents plus one per loudspeaker, in a mix
of statuses (most delivered, some sent, queued, failed). The app is served by waitress
(8 threads, as ``flask --app wsgi serve`` runs it) in a subprocess; ``--clients`` threads
in this process, each with its own ``requests.Session``, each make ``--requests``
authenticated ``GET /api/v1/announcements/<id>`` calls back to back. Latency is measured
per request on the client (send → full body read).

Floor, same run, same server, same clients: the same URL without a token, which the
API answers 401 before touching the database: the cost of the server, the framework and
the clients themselves.

Then the console: one login through the form, and the same clients with its session cookie
request the announcement page (``/announcements/<id>``) and the progress it polls
(``/announcements/<id>/progress.json``), ``--page-requests`` each.

Back to back, the clients measure the server's throughput; their latency is then queueing
(Little's law: 50 clients waiting on a server that answers R requests a second wait 50/R
seconds on average), and the floor shows it too. So the clients also behave as the real
ones do, **paced**, each from a random phase: 50 API clients asking for the status once
every ``--interval`` seconds (default 1), ``--paced-requests`` times (and the floor the
same way); and 50 people watching the announcement in the console: each opens the page
once, then its script polls ``progress.json`` every 2 s (``POLL_MS`` in console.js),
``--paced-requests`` times. The p99 target applies to these.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

import requests

from bench import common

TARGET_P99 = 0.100
CONSOLE_PASSWORD = "bench-viewer-password"
# The console's announcement page and the progress it polls (gateway/console/announcements.py).
CONSOLE_PAGES = (("console page", "/announcements/{id}"),
                 ("console progress.json", "/announcements/{id}/progress.json"))
#: The watch page polls its progress this often (``POLL_MS`` in gateway/static/console.js).
POLL_SECONDS = 2.0
CHUNK = 5000
# status -> share of each personal channel's deliveries
MIX = (("delivered", 0.70), ("sent", 0.15), ("queued", 0.08), ("sending", 0.02), ("failed", 0.05))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status_for(i: int, count: int) -> str:
    position, low = i / count, 0.0
    for status, share in MIX:
        low += share
        if position < low:
            return status
    return MIX[-1][0]


def write_ledger(app, announcement_id: int, total: int) -> tuple[dict[str, dict[str, int]], int]:
    """``total`` deliveries and their running counts, in bulk with the driver's executemany.

    The running count of residents reached is kept consistent the way ``gateway.store.ledger``
    keeps it: one ``reached`` row per resident whom a personal channel delivered to, and the
    ``delivery_counts`` row (channel "*", status "reached") holding how many there are.
    Returns the counts and the number of distinct residents reached, counted here in Python
    independently of the database, for the check against the status answer.
    """
    from sqlalchemy import func, insert, select, update

    from channels.registry import PERSONAL_CHANNELS
    from gateway.store import ledger
    from gateway.store.schema import announcements, deliveries, delivery_counts, reached

    speakers = min(1000, max(1, total // 1000))
    personal = total - speakers
    per_channel = {"sms": personal * 4 // 10, "voice": personal * 3 // 10}
    per_channel["wechat"] = personal - per_channel["sms"] - per_channel["voice"]
    per_channel["loudspeaker"] = speakers
    engine = app.extensions["engine"]
    sqlite = engine.dialect.name == "sqlite"
    marker = "?" if sqlite else "%s"
    names = ["announcement_id", "channel", "recipient_id", "address", "language", "batch",
             "status", "attempts", "provider_id", "updated_at"]
    statement = (f"INSERT INTO deliveries ({', '.join(names)}) "
                 f"VALUES ({', '.join([marker] * len(names))})")
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else now
    counts = {c: {s: 0 for s in ledger.STATUSES} for c in per_channel}
    reached_ids: set[int] = set()
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for channel, count in per_channel.items():
            for low in range(0, count, CHUNK):
                chunk = []
                for i in range(low, min(count, low + CHUNK)):
                    status = "delivered" if channel == "loudspeaker" else _status_for(i, count)
                    counts[channel][status] += 1
                    if status in ledger.REACHED and channel in PERSONAL_CHANNELS:
                        reached_ids.add(i + 1)
                    chunk.append((announcement_id, channel, i + 1,
                                  f"o{i:027d}" if channel == "wechat" else f"+86139{i:08d}",
                                  "zh", i // 200, status, 1, f"P{i}", stamp))
                cursor.executemany(statement, chunk)
                raw.commit()
        cursor.close()
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(insert(delivery_counts), [
            {"announcement_id": announcement_id, "channel": c, "status": s, "count": n}
            for c, by_status in counts.items() for s, n in by_status.items()])
        # Who was reached, from the ledger rows just written, and the running count of them.
        conn.execute(insert(reached).from_select(
            ["announcement_id", "recipient_id"],
            select(deliveries.c.announcement_id, deliveries.c.recipient_id).distinct()
            .where(deliveries.c.announcement_id == announcement_id,
                   deliveries.c.channel.in_(PERSONAL_CHANNELS),
                   deliveries.c.status.in_(ledger.REACHED))))
        first_time = conn.execute(select(func.count()).select_from(reached)
                                  .where(reached.c.announcement_id == announcement_id)).scalar_one()
        channel, status = ledger.REACHED_KEY
        conn.execute(insert(delivery_counts).values(announcement_id=announcement_id, channel=channel,
                                                    status=status, count=first_time))
        conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                     .values(state="sending"))
    return counts, len(reached_ids)


def hammer(url: str, headers: dict, clients: int, per_client: int, expect: int,
           cookies: dict | None = None, interval: float = 0.0) -> dict:
    """``clients`` threads, ``per_client`` requests each to ``url``: back to back, or with
    ``interval``, one every ``interval`` seconds per client, each from a random phase."""
    return visit([("url", url)] * per_client, headers, clients, expect, cookies,
                 interval)["url"]


def visit(plan: list[tuple[str, str]], headers: dict, clients: int, expect: int,
          cookies: dict | None = None, interval: float = 0.0) -> dict[str, dict]:
    """``clients`` threads, each requesting ``plan``'s (name, URL) in order; figures per name."""
    latencies: dict[str, list[float]] = {name: [] for name, _ in plan}
    errors: dict[str, list[str]] = {name: [] for name, _ in plan}
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    phases = random.Random(7)

    def client(phase: float) -> None:
        session = requests.Session()
        session.cookies.update(cookies or {})
        mine = []
        start.wait()
        first = time.perf_counter() + phase
        for number, (name, url) in enumerate(plan):
            if interval:
                time.sleep(max(0.0, first + number * interval - time.perf_counter()))
            began = time.perf_counter()
            error = None
            try:
                response = session.get(url, headers=headers, timeout=30, allow_redirects=False)
                _ = response.content
                if response.status_code != expect:
                    error = f"HTTP {response.status_code}"
            except requests.RequestException as failure:
                error = type(failure).__name__
            mine.append((name, time.perf_counter() - began, error))
        session.close()
        with lock:
            for name, took, error in mine:
                latencies[name].append(took)
                if error:
                    errors[name].append(error)

    threads = [threading.Thread(target=client, args=(phases.uniform(0, interval),))
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return {name: _figures(sorted(latencies[name]), errors[name], wall) for name in latencies}


def _figures(latencies: list[float], errors: list[str], wall: float) -> dict:
    return {"requests": len(latencies), "errors": len(errors), "error_kinds": sorted(set(errors)),
            "seconds": wall, "per_second": len(latencies) / wall,
            "p50": _pct(latencies, 50), "p90": _pct(latencies, 90), "p99": _pct(latencies, 99),
            "max": latencies[-1], "mean": statistics.fmean(latencies)}


def _pct(ordered: list[float], percent: float) -> float:
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def serial(url: str, headers: dict, count: int) -> float:
    """Median latency of ``count`` requests one at a time (no queueing)."""
    session = requests.Session()
    took = []
    for _ in range(count):
        began = time.perf_counter()
        session.get(url, headers=headers, timeout=30).raise_for_status()
        took.append(time.perf_counter() - began)
    session.close()
    return statistics.median(took)


def console_login(base: str, name: str, password: str) -> dict:
    """Log in to the console through its form (CSRF token included); the session cookies."""
    session = requests.Session()
    page = session.get(f"{base}/login", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    answer = session.post(f"{base}/login", data={"name": name, "password": password,
                                                  "csrf_token": token},
                          timeout=30, allow_redirects=False)
    if answer.status_code != 302:
        raise SystemExit(f"console login failed: HTTP {answer.status_code}")
    cookies = session.cookies.get_dict()
    session.close()
    return cookies


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="requests per client")
    parser.add_argument("--page-requests", type=int, default=10,
                        help="requests per client to each console page (0: skip the console)")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between a paced client's requests (the watch page: 2)")
    parser.add_argument("--paced-requests", type=int, default=15,
                        help="requests per paced client to each URL (0: skip the paced runs)")
    parser.add_argument("--poll-seconds", type=float, default=POLL_SECONDS,
                        help="seconds between a watcher's progress polls (the console's: 2)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis-db", type=int, default=common.DEFAULT_REDIS_DB)
    args = parser.parse_args(argv)

    from gateway.store import accounts

    with common.scratch_database(args.database) as database_url, \
            common.scratch_redis(args.redis_db) as redis_url, \
            tempfile.TemporaryDirectory(prefix="tongbao-bench-") as instance:
        app = common.make_app(database_url, redis_url, instance)
        common.load_county(app, 0, profiles=[])
        announcement_id = common.create_announcement(
            app, channels=["sms", "voice", "wechat", "loudspeaker"], severity="extreme")
        common.approve(app, announcement_id)
        started = time.perf_counter()
        counts, reached_expected = write_ledger(app, announcement_id, args.deliveries)
        load_seconds = time.perf_counter() - started
        with app.extensions["engine"].begin() as conn:
            token = accounts.create_token(conn, "bench-author")
            accounts.create_user(conn, "bench-viewer", "author", CONSOLE_PASSWORD)
        versions = [common.database_version(database_url), common.redis_version(redis_url)]
        with app.app_context():
            parts = time_parts(app, announcement_id)
        app.extensions["engine"].dispose()

        port = _free_port()
        env = common.gateway_env(database_url, redis_url, instance)
        log = open(os.path.join(instance, "waitress.log"), "wb")
        server = subprocess.Popen([sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
                                   f"--threads={args.threads}", "wsgi:app"],
                                  cwd=common.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/api/v1/announcements/{announcement_id}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    body = requests.get(url, headers=headers, timeout=30)
                    body.raise_for_status()
                    status = body.json()
                    break
                except requests.RequestException:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.2)
            one = serial(url, headers, 20)
            floor_one = serial_floor(url, 20)
            floor = hammer(url, {}, args.clients, args.requests, 401)
            load = hammer(url, headers, args.clients, args.requests, 200)
            pages, paced = {}, {}
            base = f"http://127.0.0.1:{port}"
            cookies = console_login(base, "bench-viewer", CONSOLE_PASSWORD)
            page_urls = {name: base + path.format(id=announcement_id) for name, path in CONSOLE_PAGES}
            if args.page_requests:
                for name, page_url in page_urls.items():
                    pages[name] = hammer(page_url, {}, args.clients, args.page_requests, 200,
                                         cookies=cookies)
            if args.paced_requests:
                paced["floor (401)"] = hammer(url, {}, args.clients, args.paced_requests, 401,
                                              interval=args.interval)
                paced["status"] = hammer(url, headers, args.clients, args.paced_requests, 200,
                                         interval=args.interval)
                # A watcher opens the page once, then its script polls the progress.
                watching = [(name, page_urls[name]) for name, _ in CONSOLE_PAGES]
                watch = watching[:1] + watching[1:] * args.paced_requests
                paced.update(visit(watch, {}, args.clients, 200, cookies, args.poll_seconds))
        finally:
            common.stop_processes([server])
            log.close()

    total = sum(sum(by.values()) for by in status["deliveries"].values())
    ratio = load["p99"] / floor["p99"]
    rows = [
        ("database", versions[0], f"waitress {args.threads} threads in a subprocess"),
        ("deliveries in the ledger", total,
         ", ".join(f"{c} {sum(n.values()):,}" for c, n in sorted(status["deliveries"].items()))
         + f"; written in {load_seconds:.1f} s"),
        ("reached_residents in the answer", status["reached_residents"],
         f"expected {reached_expected:,} (distinct residents delivered to, counted while writing)"),
        ("one client: median latency (ms)", one * 1e3, f"floor (401, no token) {floor_one * 1e3:.1f} ms"),
        (f"{args.clients} clients: requests", load["requests"],
         f"{args.requests} each; errors {load['errors']} {load['error_kinds'] or ''}"),
        ("throughput (requests/s)", load["per_second"], f"floor {floor['per_second']:,.0f}"),
        ("p50 latency (ms)", load["p50"] * 1e3, f"floor {floor['p50'] * 1e3:.1f} ms"),
        ("p90 latency (ms)", load["p90"] * 1e3, f"floor {floor['p90'] * 1e3:.1f} ms"),
        ("p99 latency (ms)", load["p99"] * 1e3,
         f"floor {floor['p99'] * 1e3:.1f} ms; back to back, {args.clients} clients wait at least "
         f"{args.clients} / throughput = {args.clients / load['per_second'] * 1e3:.0f} ms on average"),
        ("max latency (ms)", load["max"] * 1e3, f"floor {floor['max'] * 1e3:.1f} ms"),
        ("in-process: ledger.counts (ms)", parts["counts"] * 1e3, "median of 5; the counts table"),
        ("in-process: ledger.reached_count (ms)", parts["reached_count"] * 1e3,
         "median of 5; the running count (one delivery_counts row)"),
        ("in-process: reports.status (ms)", parts["status"] * 1e3, "median of 5; the whole answer"),
        ("ratio to floor (p99)", ratio, "same URL, same load, answered 401 before the database"),
    ]
    for name, page in pages.items():
        rows += [
            (f"{name}: requests / errors", f"{page['requests']:,} / {page['errors']}",
             f"{args.clients} clients × {args.page_requests}, logged in {page['error_kinds'] or ''}"),
            (f"{name}: p50 / p99 / max (ms)",
             f"{page['p50'] * 1e3:,.0f} / {page['p99'] * 1e3:,.0f} / {page['max'] * 1e3:,.0f}",
             f"{page['per_second']:,.1f} req/s back to back; ratio to floor p99 "
             f"{page['p99'] / floor['p99']:.1f}×"),
        ]
    for name, run in paced.items():
        verdict = ("" if name.startswith("floor") else
                   f"; target p99 ≤ {TARGET_P99 * 1e3:.0f} ms: {common.verdict(run['p99'] <= TARGET_P99)}")
        every = args.interval if name in ("floor (401)", "status") else args.poll_seconds
        how = ("opened once per watcher" if name == "console page"
               else f"1 per {every:g} s per client")
        rows.append((f"paced, {how}: {name}: p50 / p99 / max (ms)",
                     f"{run['p50'] * 1e3:,.1f} / {run['p99'] * 1e3:,.1f} / {run['max'] * 1e3:,.1f}",
                     f"{run['requests']:,} requests, errors {run['errors']} "
                     f"{run['error_kinds'] or ''}{verdict}"))
    rows += [(f"in-process: {name} (ms)", parts[name] * 1e3, "median of 5")
             for name in ("queries.failures", "queries.loudspeakers_by_village")]
    result = {"script": "console_load", "database": args.database, "deliveries": total,
              "deliveries_requested": args.deliveries, "reached_residents": status["reached_residents"],
              "reached_expected": reached_expected, "clients": args.clients,
              "requests": load["requests"], "errors": load["errors"],
              "serial_median_seconds": one, "floor_serial_median_seconds": floor_one,
              "p50": load["p50"], "p90": load["p90"], "p99": load["p99"], "max": load["max"],
              "per_second": load["per_second"], "floor": floor, "parts_seconds": parts, "ratio_to_floor": ratio,
              "pages": pages, "paced": paced, "interval": args.interval,
              "machine": common.machine(), "versions": versions}
    common.print_table(f"Console and API under load: {total:,} deliveries, {args.clients} clients, "
                       f"{args.database}", rows, result)
    return result


def time_parts(app, announcement_id: int) -> dict[str, float]:
    """Where a status answer's time goes, measured in this process without HTTP."""
    from gateway.delivery import lifecycle
    from gateway.store import ledger
    from gateway.delivery import reports
    from gateway.web.console import queries

    def median_of(action) -> float:
        took = []
        for _ in range(5):
            with app.extensions["engine"].connect() as conn:
                began = time.perf_counter()
                action(conn)
                took.append(time.perf_counter() - began)
        return statistics.median(took)

    return {"counts": median_of(lambda c: ledger.counts(c, announcement_id)),
            "reached_count": median_of(lambda c: ledger.reached_count(c, announcement_id)),
            "status": median_of(lambda c: reports.status(c, lifecycle.get(c, announcement_id))),
            "queries.failures": median_of(lambda c: queries.failures(c, announcement_id, 1)),
            "queries.loudspeakers_by_village":
                median_of(lambda c: queries.loudspeakers_by_village(c, announcement_id))}


def serial_floor(url: str, count: int) -> float:
    session = requests.Session()
    took = []
    for _ in range(count):
        began = time.perf_counter()
        session.get(url, timeout=30)
        took.append(time.perf_counter() - began)
    session.close()
    return statistics.median(took)


if __name__ == "__main__":
    main()
