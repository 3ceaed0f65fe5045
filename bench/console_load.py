"""Console and API under load: the status of announcements sharing millions of deliveries.

    .venv/bin/python -m bench.console_load --deliveries 10000000 --notices 10 --clients 50 --database sqlite

The ledger rows and their running counts are written directly in bulk (no real send), the
database generating the rows itself: ``--notices`` announcements share ``--deliveries``, each
with SMS, voice and WeChat deliveries to the same residents plus one per loudspeaker, in a mix
of statuses (most delivered, some sent, queued, failed), with the running counts, the
``reached`` rows and the audience as the ledger and the plan keep them. The roster holds the
residents they name (``--residents``). The app is served by waitress (8 threads, as
``flask --app wsgi serve`` runs it) in a subprocess; ``--clients`` threads in this process,
each with its own ``requests.Session``, client k asking about notice k mod ``--notices``,
each make ``--requests`` authenticated ``GET /api/v1/announcements/<id>`` calls back to back.
Latency is measured per request on the client (send → full body read).

Floor, same run, same server, same clients: the same URLs without a token, which the
API answers 401 before touching the database: the cost of the server, the framework and
the clients themselves.

Then the console: one login through the form, and the same clients with its session cookie
request the announcement page (``/announcements/<id>``), the progress it polls
(``/announcements/<id>/progress.json``) and the announcement list (``/``),
``--page-requests`` each.

Back to back, the clients measure the server's throughput; their latency is then queueing
(Little's law: 50 clients waiting on a server that answers R requests a second wait 50/R
seconds on average), and the floor shows it too. So the clients also behave as the real
ones do, **paced**, each from a random phase: 50 API clients asking for the status once
every ``--interval`` seconds (default 1), ``--paced-requests`` times (and the floor the
same way); and 50 people watching the announcements in the console: each opens the page
once, then its script polls ``progress.json`` every 2 s (``POLL_MS`` in console.js),
``--paced-requests`` times, sending the version of the loudspeaker table it holds as the
script does (the table comes again only when it changed). The p99 target applies to these.
"""
from __future__ import annotations

import argparse
import math
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

import psutil
import redis
import requests

from bench import common

TARGET_P99 = 0.100
CONSOLE_PASSWORD = "bench-viewer-password"
# The console's announcement page and the progress it polls (gateway/console/announcements.py).
CONSOLE_PAGES = (("console page", "/announcements/{id}"),
                 ("console progress.json", "/announcements/{id}/progress.json"))
#: The watch page polls its progress this often (``POLL_MS`` in gateway/static/console.js).
POLL_SECONDS = 2.0
# status -> share of each personal channel's deliveries
MIX = (("delivered", 0.70), ("sent", 0.15), ("queued", 0.08), ("sending", 0.02), ("failed", 0.05))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_ledger(app, announcement_ids: list[int], total: int,
                 devices: int) -> tuple[dict[str, dict[str, int]], int]:
    """``total`` deliveries shared by ``announcement_ids``, and their running counts, in bulk.

    The database makes the rows itself (``INSERT … SELECT`` from a recursive counter on
    SQLite, ``generate_series`` on PostgreSQL, one statement and one commit per channel of
    a notice), so ten million take minutes, not the hour a Python loop would, and memory
    stays flat. Each notice has SMS, voice and WeChat deliveries to the same residents
    (ids from 1) plus one per loudspeaker; each channel's rows are in the statuses of
    ``MIX`` by position. The running counts are kept the way ``gateway.store.ledger``
    keeps them: ``delivery_counts`` per channel and status, one ``reached`` row per
    resident whom a personal channel delivered to (the channel that did first), its
    running count, and the audience the plan would have recorded.
    Returns the counts of the first notice and its number of residents reached, both
    computed here from the positions, for the check against the status answer.
    """
    from sqlalchemy import insert, text, update

    from gateway.store import ledger
    from gateway.store.schema import announcements, delivery_counts

    engine = app.extensions["engine"]
    now = datetime.now(timezone.utc)
    # As SQLAlchemy stores a time in SQLite: text without the zone.
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f") if engine.dialect.name == "sqlite" else now
    counts, reached_count = {}, 0
    share, extra = divmod(total, len(announcement_ids))
    for index, announcement_id in enumerate(announcement_ids):
        mine = share + (1 if index < extra else 0)
        per_channel = _channel_sizes(mine, devices)
        bounds = {channel: _status_bounds(count) for channel, count in per_channel.items()}
        # Residents 1..n are reached by the first channel whose delivered rows reach them.
        reached_by = [(c, bounds[c]["delivered"][1]) for c in PERSONAL_ORDER]
        with engine.begin() as conn:
            for channel, count in per_channel.items():
                conn.execute(text(_rows_sql(engine.dialect.name, channel, bounds[channel])),
                             {"announcement_id": announcement_id, "count": count, "stamp": stamp})
            first_time = max(high for _, high in reached_by)
            conn.execute(text(_reached_sql(engine.dialect.name, reached_by)),
                         {"announcement_id": announcement_id, "count": first_time, "stamp": stamp})
            mine_counts = {c: {s: 0 for s in ledger.STATUSES} for c in per_channel}
            for channel, by_status in bounds.items():
                for status, (low, high) in by_status.items():
                    mine_counts[channel][status] = high - low
            conn.execute(insert(delivery_counts), [
                {"announcement_id": announcement_id, "channel": c, "status": s, "count": n}
                for c, by_status in mine_counts.items() for s, n in by_status.items()])
            channel, status = ledger.REACHED_KEY
            conn.execute(insert(delivery_counts).values(announcement_id=announcement_id,
                                                        channel=channel, status=status,
                                                        count=first_time))
            # The plan records its audience: everyone a personal channel was planned for.
            ledger.set_audience(conn, announcement_id, max(per_channel[c] for c in PERSONAL_ORDER))
            conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                         .values(state="sending"))
        if index == 0:
            counts, reached_count = mine_counts, first_time
    return counts, reached_count


PERSONAL_ORDER = ("sms", "voice", "wechat")


def _channel_sizes(deliveries: int, devices: int) -> dict[str, int]:
    """How one notice's deliveries split: one per loudspeaker (at most one in a thousand),
    the rest 4:3:3 over SMS, voice and WeChat."""
    speakers = min(devices, max(1, deliveries // 1000))
    personal = deliveries - speakers
    sizes = {"sms": personal * 4 // 10, "voice": personal * 3 // 10}
    sizes["wechat"] = personal - sizes["sms"] - sizes["voice"]
    sizes["loudspeaker"] = speakers
    return sizes


def _status_bounds(count: int) -> dict[str, tuple[int, int]]:
    """Each status of ``MIX`` as a range of positions [low, high) among ``count`` rows."""
    bounds, low, share = {}, 0, 0.0
    for status, part in MIX:
        share += part
        high = count if status == MIX[-1][0] else min(count, math.ceil(share * count))
        bounds[status] = (low, high)
        low = high
    return bounds


def _counter(dialect: str, limit: str) -> tuple[str, str]:
    """A WITH clause and a FROM source yielding ``i`` = 0 … ``limit`` - 1."""
    if dialect == "sqlite":
        return (f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {limit}) ",
                "n")
    return "", f"generate_series(0, {limit} - 1) AS n(i)"


def _rows_sql(dialect: str, channel: str, bounds: dict[str, tuple[int, int]]) -> str:
    with_clause, source = _counter(dialect, ":count")
    status = "CASE " + " ".join(f"WHEN i < {high} THEN '{status}'"
                                for status, (_, high) in bounds.items()) + " END"
    if channel == "loudspeaker":
        status = "'delivered'"
    prefix = "o" if channel == "wechat" else "+86139"
    return (f"{with_clause}INSERT INTO deliveries (announcement_id, channel, recipient_id, address, "
            "language, batch, status, attempts, provider_id, updated_at, unknown_outcomes) "
            f"SELECT :announcement_id, '{channel}', i + 1, '{prefix}' || i, 'zh', i / 200, "
            f"{status}, 1, 'P' || i, :stamp, 0 FROM {source}")


def _reached_sql(dialect: str, reached_by: list[tuple[str, int]]) -> str:
    with_clause, source = _counter(dialect, ":count")
    channel = "CASE " + " ".join(f"WHEN i < {high} THEN '{c}'" for c, high in reached_by) + " END"
    return (f"{with_clause}INSERT INTO reached (announcement_id, recipient_id, channel, reached_at) "
            f"SELECT :announcement_id, i + 1, {channel}, :stamp FROM {source}")


def hammer(urls: list[str], headers: dict, clients: int, per_client: int, expect: int,
           cookies: dict | None = None, interval: float = 0.0) -> dict:
    """``clients`` threads, ``per_client`` requests each, client k to ``urls[k % len(urls)]``:
    back to back, or with ``interval``, one every ``interval`` seconds per client, each from a
    random phase."""
    return visit([[("url", url)] * per_client for url in urls], headers, clients, expect,
                 cookies, interval)["url"]


def visit(plans: list[list[tuple[str, str]]], headers: dict, clients: int, expect: int,
          cookies: dict | None = None, interval: float = 0.0) -> dict[str, dict]:
    """``clients`` threads, client k requesting ``plans[k % len(plans)]``'s (name, URL) in
    order; figures per name."""
    names = {name: None for plan in plans for name, _ in plan}
    latencies: dict[str, list[float]] = {name: [] for name in names}
    errors: dict[str, list[str]] = {name: [] for name in names}
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    phases = random.Random(7)

    def client(plan: list[tuple[str, str]], phase: float) -> None:
        session = requests.Session()
        session.cookies.update(cookies or {})
        mine = []
        speakers_version = ""  # as console.js: the loudspeaker table held, resent when changed
        start.wait()
        first = time.perf_counter() + phase
        for number, (name, url) in enumerate(plan):
            if interval:
                time.sleep(max(0.0, first + number * interval - time.perf_counter()))
            polls = url.endswith("/progress.json")
            params = {"loudspeakers_version": speakers_version} if polls else None
            began = time.perf_counter()
            error = None
            try:
                response = session.get(url, headers=headers, params=params, timeout=30,
                                       allow_redirects=False)
                _ = response.content
                if response.status_code != expect:
                    error = f"HTTP {response.status_code}"
            except requests.RequestException as failure:
                error = type(failure).__name__
            mine.append((name, time.perf_counter() - began, error))
            if polls and not error and "loudspeakers" in (body := response.json()):
                speakers_version = body["loudspeakers_version"]
        session.close()
        with lock:
            for name, took, error in mine:
                latencies[name].append(took)
                if error:
                    errors[name].append(error)

    threads = [threading.Thread(target=client,
                                args=(plans[number % len(plans)], phases.uniform(0, interval)))
               for number in range(clients)]
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
    parser.add_argument("--deliveries", type=int, default=1_000_000,
                        help="deliveries in the ledger, shared by the notices")
    parser.add_argument("--notices", type=int, default=1,
                        help="announcements sharing the deliveries; the clients spread over them")
    parser.add_argument("--residents", type=int, default=None,
                        help="residents in the roster (default: one per personal recipient of a "
                             "notice, so every delivery names a resident)")
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
        started = time.perf_counter()
        per_notice = _channel_sizes(args.deliveries // args.notices, 1)
        residents = (args.residents if args.residents is not None
                     else max(per_notice[c] for c in PERSONAL_ORDER))
        county = common.load_county(app, residents)
        roster_seconds = time.perf_counter() - started
        announcement_ids = []
        for _ in range(args.notices):
            announcement_ids.append(common.create_announcement(
                app, channels=["sms", "voice", "wechat", "loudspeaker"], severity="extreme"))
            common.approve(app, announcement_ids[-1])
        announcement_id = announcement_ids[0]
        started = time.perf_counter()
        counts, reached_expected = write_ledger(app, announcement_ids, args.deliveries,
                                                county["devices"])
        load_seconds = time.perf_counter() - started
        ledger_rows = _ledger_rows(app)
        with app.extensions["engine"].begin() as conn:
            token = accounts.create_token(conn, "bench-author")
            accounts.create_user(conn, "bench-viewer", "author", CONSOLE_PASSWORD)
        versions = [common.database_version(database_url), common.redis_version(redis_url)]
        with app.app_context():
            parts = time_parts(app, announcement_id)
        # What the status kept while timed here: the first answers below start from nothing.
        keeper = redis.Redis.from_url(redis_url)
        keeper.delete(*keeper.keys("tongbao:counted:*") or ["none"])
        keeper.close()
        app.extensions["engine"].dispose()

        port = _free_port()
        env = common.gateway_env(database_url, redis_url, instance)
        log = open(os.path.join(instance, "waitress.log"), "wb")
        server = subprocess.Popen([sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
                                   f"--threads={args.threads}", "wsgi:app"],
                                  cwd=common.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        urls = [f"{base}/api/v1/announcements/{number}" for number in announcement_ids]
        url = urls[0]
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
            cookies = console_login(base, "bench-viewer", CONSOLE_PASSWORD)
            # Each notice's first answers, while nothing is kept yet: they count as they answer.
            first = {"status": first_answers(urls, headers, {}),
                     "console progress.json": first_answers(
                         [f"{base}/announcements/{number}/progress.json"
                          for number in announcement_ids], {}, cookies)}
            one = serial(url, headers, 20)
            floor_one = serial_floor(url, 20)
            floor = hammer(urls, {}, args.clients, args.requests, 401)
            load = hammer(urls, headers, args.clients, args.requests, 200)
            pages, paced, cpu = {}, {}, {}
            page_urls = {name: [base + path.format(id=number) for number in announcement_ids]
                         for name, path in CONSOLE_PAGES}
            if args.page_requests:
                for name, urls_of_page in page_urls.items():
                    pages[name] = hammer(urls_of_page, {}, args.clients, args.page_requests, 200,
                                         cookies=cookies)
                pages["announcement list"] = hammer([f"{base}/"], {}, args.clients,
                                                    args.page_requests, 200, cookies=cookies)
            if args.paced_requests:
                began = server_cpu(server)
                paced["floor (401)"] = hammer(urls, {}, args.clients, args.paced_requests, 401,
                                              interval=args.interval)
                cpu["floor (401)"], began = server_cpu(server) - began, server_cpu(server)
                paced["status"] = hammer(urls, headers, args.clients, args.paced_requests, 200,
                                         interval=args.interval)
                cpu["status"], began = server_cpu(server) - began, server_cpu(server)
                # A watcher opens the page once, then its script polls the progress.
                watches = []
                for number in range(len(announcement_ids)):
                    watching = [(name, page_urls[name][number]) for name, _ in CONSOLE_PAGES]
                    watches.append(watching[:1] + watching[1:] * args.paced_requests)
                paced.update(visit(watches, {}, args.clients, 200, cookies, args.poll_seconds))
                cpu["watchers (page once, then progress.json)"] = server_cpu(server) - began
        finally:
            common.stop_processes([server])
            log.close()

    total = sum(sum(by.values()) for by in status["deliveries"].values())
    ratio = load["p99"] / floor["p99"]
    rows = [
        ("database", versions[0], f"waitress {args.threads} threads in a subprocess"),
        ("deliveries in the ledger", ledger_rows,
         f"{args.notices} notices; written in {load_seconds:.1f} s (roster of "
         f"{county['residents']:,} residents, {county['devices']:,} loudspeakers: "
         f"{roster_seconds:.1f} s)"),
        ("deliveries of the first notice (status answer)", total,
         ", ".join(f"{c} {sum(n.values()):,}" for c, n in sorted(status["deliveries"].items()))),
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
                   f"; target p99 ≤ {TARGET_P99 * 1e3:.0f} ms: {common.verdict(run['p99'] <= TARGET_P99)}"
                   f"; ratio to the paced floor's p99 {run['p99'] / paced['floor (401)']['p99']:.1f}×")
        every = args.interval if name in ("floor (401)", "status") else args.poll_seconds
        how = ("opened once per watcher" if name == "console page"
               else f"1 per {every:g} s per client")
        rows.append((f"paced, {how}: {name}: p50 / p99 / max (ms)",
                     f"{run['p50'] * 1e3:,.1f} / {run['p99'] * 1e3:,.1f} / {run['max'] * 1e3:,.1f}",
                     f"{run['requests']:,} requests, errors {run['errors']} "
                     f"{run['error_kinds'] or ''}{verdict}"))
    requests_of = {"floor (401)": ["floor (401)"], "status": ["status"],
                   "watchers (page once, then progress.json)": ["console page",
                                                                "console progress.json"]}
    cpu_per_request = {name: seconds / sum(paced[part]["requests"] for part in requests_of[name])
                       for name, seconds in cpu.items()}
    rows += [(f"paced: server CPU per request: {name} (ms)", seconds * 1e3,
              "the waitress process's user + system time over the run's requests (background "
              "counting included); unlike latency, other programs' load hardly moves it")
             for name, seconds in cpu_per_request.items()]
    rows += [(f"in-process: {name} (ms)", parts[name] * 1e3, "median of 5")
             for name in ("queries.failures", "queries.loudspeakers_by_village")]
    rows += [(f"in-process: {name} (ms)", parts[name] * 1e3,
              "median of 5; counted in the background above 100,000 deliveries (and for the "
              "first answer)") for name in ("reach.section_counts", "reports.history")]
    rows += [(f"first answer of each notice: {name}: median / max (ms)",
              f"{statistics.median(took) * 1e3:,.0f} / {max(took) * 1e3:,.0f}",
              f"{len(took)} notices, one request at a time, nothing counted yet")
             for name, took in first.items()]
    result = {"script": "console_load", "database": args.database, "deliveries": ledger_rows,
              "notices": args.notices, "first_notice_deliveries": total,
              "counts_match": status["deliveries"] == counts,
              "residents": county["residents"], "write_seconds": load_seconds,
              "deliveries_requested": args.deliveries, "reached_residents": status["reached_residents"],
              "reached_expected": reached_expected, "clients": args.clients,
              "requests": load["requests"], "errors": load["errors"],
              "serial_median_seconds": one, "floor_serial_median_seconds": floor_one,
              "p50": load["p50"], "p90": load["p90"], "p99": load["p99"], "max": load["max"],
              "per_second": load["per_second"], "floor": floor, "parts_seconds": parts, "ratio_to_floor": ratio,
              "pages": pages, "paced": paced, "first_answers_seconds": first,
              "server_cpu_per_request_seconds": cpu_per_request, "interval": args.interval,
              "machine": common.machine(), "versions": versions}
    common.print_table(f"Console and API under load: {ledger_rows:,} deliveries across {args.notices} "
                       f"notices, {args.clients} clients, "
                       f"{args.database}", rows, result)
    return result


def time_parts(app, announcement_id: int) -> dict[str, float]:
    """Where a status answer's time goes, measured in this process without HTTP."""
    from gateway.delivery import lifecycle, reach, reports
    from gateway.store import ledger
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
            "reach.section_counts":
                median_of(lambda c: reach.section_counts(c, lifecycle.get(c, announcement_id),
                                                         planned=True)),
            "reports.history":
                median_of(lambda c: reports.history(c, lifecycle.get(c, announcement_id))),
            "queries.loudspeakers_by_village":
                median_of(lambda c: queries.loudspeakers_by_village(c, announcement_id))}


def _ledger_rows(app) -> int:
    """Rows in the deliveries table, counted once after writing (not on the clock)."""
    from sqlalchemy import func, select

    from gateway.store.schema import deliveries

    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(func.count()).select_from(deliveries)).scalar_one()


def server_cpu(server: subprocess.Popen) -> float:
    """CPU seconds (user + system) the server process has used so far."""
    times = psutil.Process(server.pid).cpu_times()
    return times.user + times.system


def first_answers(urls: list[str], headers: dict, cookies: dict) -> list[float]:
    """The latency of one request to each URL, one at a time."""
    session = requests.Session()
    session.cookies.update(cookies)
    took = []
    for url in urls:
        began = time.perf_counter()
        session.get(url, headers=headers, timeout=300).raise_for_status()
        took.append(time.perf_counter() - began)
    session.close()
    return took


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
