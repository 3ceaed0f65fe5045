"""Reach curve: the share of residents reached over time, overall and for the vulnerable.

    .venv/bin/python -m bench.reach_curve --residents 2000 --full-residents 1000000 \\
        --plot docs/reach-curve.png

Rates as a real deployment would configure them: SMS on a short code at 100/s
(``SMS_RATE``), a pool of 20 call lines at 1/s each (``VOICE_RATE`` 20), WeChat template
messages at 50/s (``WECHAT_RATE``), loudspeakers at 100/s (``LOUDSPEAKER_RATE``).
"Reached": by at least one personal channel (SMS or a call ``delivered``/``confirmed``;
WeChat ``sent``, since the gateway gets no delivery report from WeChat). Vulnerable:
visually impaired or 65 and over (``gateway.delivery.reach.is_vulnerable``).

(a) **Actual run, scaled down.** A synthetic county of ``--residents`` and an ``extreme``
announcement over SMS, voice and WeChat, with the *real* rates: the county is
``full / residents`` times smaller, so every queue drains that many times faster and a
second of the run stands for ``full / residents`` seconds of the full county. One
``flask worker`` per channel queue (as ``flask serve`` runs them), already registered when
the clock starts at approval; planning in this process; the gateway's web app under waitress
for the provider callbacks. The Twilio stand-in (``tests.fakes.twilio_server.FakeTwilio``, own
process) posts, right after accepting each send, the signed callbacks Twilio would: SMS
``delivered``; a call the resident's key ``1`` (the gather) and then ``completed`` (for a
vulnerable resident an ``extreme`` call is only done when confirmed). WeChat goes to
``tests.fakes.wechat_server.FakeWechat``. The curve is read from the ledger: each resident's
earliest ``deliveries.updated_at`` among rows that reached them.

(b) **Estimator at full size.** A county of ``--full-residents`` in a scratch database; the
preview (``gateway.delivery.preview.preview``) gives the deliveries per channel, and its own grouping
(``preview._groups`` + the policy's ``channels_for``, exactly as the preview applies it) splits
them into the set of channels each resident gets. The model, explicit:

* each channel's queue drains at its configured rate from the moment of approval, with no
  failures, retries or provider delay (a send reaching the provider reaches the resident);
* each queue is in planned order: the plan walks residents in id order (the synthetic county
  numbers them village by village) and every channel's batches follow it, so a resident at quantile ``p`` of the roster is at ``p`` of
  every one of their channels' queues (each channel's recipients spread evenly along the roster);
* a resident is reached at the earliest time any of their channels reaches them:
  ``min over c of start_c + p * count_c / rate_c``.
* loudspeakers (a mix below) reach everyone in their village; their rows are written after the
  whole roster, so they start when the plan ends (``--plan-seconds``: bench 1's SQLite plan of
  1M; ``bench/run_all.sh`` passes the figure bench 1 has just measured) and play village by
  village in the same order.

Mixes estimated at full size: the current policy; plus loudspeakers counted as reaching their
village; WeChat at ``--wechat-fast-rate``; and the SMS rate the current policy would need for
90 % in 10 minutes. The floor: the estimator at the run's own size and rates; the ratio is the
run's time to 90 % over the estimate's.
"""
from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque

from bench import common
from channels.registry import PERSONAL_CHANNELS

FULL_RESIDENTS = 1_000_000
TARGET_MINUTES = 10
MINUTES = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 150, 180, 240, 360, 480, 600, 900)
GRID = 4001  # quantiles of the roster the estimator evaluates


# --- the estimator -----------------------------------------------------------------------------

def channel_sets(app, announcement_id: int) -> tuple[dict, Counter]:
    """The preview, and residents per (set of personal channels, vulnerable, has a loudspeaker)."""
    from audiences.policy import channels_for
    from gateway.delivery import lifecycle
    from gateway.delivery.reach import VULNERABLE_AGE
    from gateway.delivery.planner import planned_channels, speaker_villages
    from gateway.delivery.preview import _groups, group_person, preview

    sets: Counter = Counter()
    with app.app_context(), app.extensions["engine"].connect() as conn:
        announcement = lifecycle.get(conn, announcement_id)
        summary = preview(conn, announcement)
        codes = json.loads(announcement.areas)
        allowed = planned_channels(announcement, app.config)
        year = (announcement.sent or announcement.created_at).year
        speakers = speaker_villages(conn, codes, False)
        for group in _groups(conn, codes, False):
            chosen = channels_for(group_person(group), severity=announcement.severity,
                                  policy=app.extensions["policy"], available=allowed, year=year)
            vulnerable = bool(group.visually_impaired) or bool(
                group.birth_year and year - group.birth_year >= VULNERABLE_AGE)
            personal = frozenset(c for c in chosen if c in PERSONAL_CHANNELS)
            sets[(personal, vulnerable, bool(speakers.get(group.village)))] += group.n
    # the split must add up to the preview's own counts
    for channel in PERSONAL_CHANNELS:
        split = sum(n for (s, _, _), n in sets.items() if channel in s)
        if split != summary["deliveries"].get(channel, 0):
            raise SystemExit(f"channel sets disagree with the preview on {channel}: "
                             f"{split} != {summary['deliveries'].get(channel, 0)}")
    return summary, sets


def estimate(sets: Counter, counts: dict[str, int], rates: dict[str, float], *,
             loudspeakers: bool = False, plan_seconds: float = 0.0) -> dict[str, list[float]]:
    """Sorted reach times (s) of each resident group, as weights over the roster's quantiles."""
    drain = {c: counts.get(c, 0) / rates[c] for c in (*PERSONAL_CHANNELS, "loudspeaker") if rates.get(c)}
    step = 1.0 / (GRID - 1)
    quantiles = [i * step for i in range(GRID)]
    out: dict[str, list[tuple[float, float]]] = {"overall": [], "vulnerable": []}
    for (personal, vulnerable, speaker), n in sets.items():
        channels = [(0.0, drain[c]) for c in personal if c in drain]
        if loudspeakers and speaker and "loudspeaker" in drain:
            channels.append((plan_seconds, drain["loudspeaker"]))
        if not channels:
            continue  # unreachable: never counted as reached
        weight = n / GRID
        for p in quantiles:
            t = min(start + p * span for start, span in channels)
            out["overall"].append((t, weight))
            if vulnerable:
                out["vulnerable"].append((t, weight))
    totals = {"overall": sum(sets.values()),
              "vulnerable": sum(n for (_, v, _), n in sets.items() if v)}
    return {key: _curve(points, totals[key]) for key, points in out.items()}


def _curve(points: list[tuple[float, float]], total: float) -> tuple[list[float], list[float]]:
    """(times, cumulative share) for a step curve from weighted reach times."""
    points.sort()
    times, shares, running = [], [], 0.0
    for t, w in points:
        running += w
        times.append(t)
        shares.append(min(1.0, running / total) if total else 0.0)
    return times, shares


def share_at(curve, seconds: float) -> float:
    times, shares = curve
    index = bisect.bisect_right(times, seconds)
    return shares[index - 1] if index else 0.0


def time_to(curve, share: float) -> float | None:
    times, shares = curve
    index = bisect.bisect_left(shares, share - 1e-12)
    return times[index] if index < len(times) else None


# --- the Twilio stand-in that answers with callbacks -----------------------------------------

def _serve_twilio(conn) -> None:
    """Child process: a FakeTwilio that posts each send's callbacks right after accepting it."""
    sys.path.insert(0, common.ROOT)
    from tests.fakes.twilio_server import FakeTwilio

    work: queue.Queue = queue.Queue()
    posted: dict[str, float] = {}  # "sms/<delivery id>" -> when the reaching callback returned
    failures: list[str] = []

    class Answering(FakeTwilio):
        def __init__(self):
            super().__init__()
            self.requests = deque(maxlen=100)

        def _message(self, form):
            resource = super()._message(form)
            work.put(resource["sid"])
            return resource

        def _call(self, form):
            resource = super()._call(form)
            work.put(resource["sid"])
            return resource

    fake = Answering()
    fake.__enter__()

    def answer() -> None:
        while True:
            sid = work.get()
            if sid is None:
                return
            try:
                key = "/".join(fake.messages.get(sid, fake.calls.get(sid))["form"]
                               ["StatusCallback"].rsplit("/", 2)[-2:])
                if sid.startswith("SM"):
                    response = fake.send_status(sid, "delivered")
                else:
                    response = fake.press(sid, "1")  # the gather: the resident pressed 1
                    posted[key] = time.time()
                    response = fake.send_status(sid, "completed", duration=40)
                if sid.startswith("SM"):
                    posted[key] = time.time()
                if not response.ok:
                    failures.append(f"{sid}: {response.status_code}")
            except Exception as error:  # noqa: BLE001 - reported to the parent
                failures.append(f"{sid}: {error!r}")

    threads = [threading.Thread(target=answer, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    conn.send({"url": fake.url, "settings": fake.settings})
    while True:
        message = conn.recv()
        if message == "posted":
            conn.send({"pending": work.qsize(), "posted": dict(posted), "failures": failures[:20],
                       "failed": len(failures)})
        else:
            break
    for _ in threads:
        work.put(None)
    fake.__exit__(None, None, None)
    conn.send("stopped")


class AnsweringTwilio:
    def __enter__(self):
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_serve_twilio, args=(child,), daemon=True)
        self.process.start()
        info = self._conn.recv()
        self.url, self.settings = info["url"], info["settings"]
        return self

    def posted(self) -> dict:
        self._conn.send("posted")
        return self._conn.recv()

    def __exit__(self, *exc_info):
        common.stop_child(self._conn, self.process)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url + "/loudspeaker/public-key.pem", timeout=5)
            return
        except requests.RequestException:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the web server did not start")
            time.sleep(0.2)


# --- (a) the actual run ------------------------------------------------------------------------

def actual_run(args, rates: dict[str, float]) -> dict:
    from sqlalchemy import or_, select

    from gateway.delivery import jobs
    from gateway.store import ledger
    from gateway.store.db import as_utc
    from gateway.delivery.reach import is_vulnerable
    from gateway.store.schema import announcements, deliveries, residents

    with common.scratch_database(args.database) as database_url, \
            common.scratch_redis(args.redis_db) as redis_url, \
            tempfile.TemporaryDirectory(prefix="tongbao-bench-") as instance, \
            AnsweringTwilio() as twilio, common.FakeProcess("wechat") as wechat:
        port = _free_port()
        public = f"http://127.0.0.1:{port}"
        provider = common.provider_env(twilio, wechat, SMS_RATE=rates["sms"],
                                       VOICE_RATE=rates["voice"], WECHAT_RATE=rates["wechat"],
                                       PUBLIC_BASE_URL=public)
        config = {k: (float(v) if k.endswith("_RATE") else v) for k, v in provider.items()}
        app = common.make_app(database_url, redis_url, instance, **config)
        county = common.load_county(app, args.residents)
        announcement_id = common.create_announcement(app, channels=list(PERSONAL_CHANNELS))
        summary, sets = channel_sets(app, announcement_id)
        versions = [common.database_version(database_url), common.redis_version(redis_url)]

        env = common.gateway_env(database_url, redis_url, instance, **provider)
        log = open(os.path.join(instance, "waitress.log"), "wb")
        server = subprocess.Popen([sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
                                   "--threads=8", "wsgi:app"], cwd=common.ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        workers = []
        try:
            _wait_for_server(public, server)
            for name in PERSONAL_CHANNELS:
                workers += common.start_workers(1, env, burst=False, queues=name,
                                                log_dir=os.path.join(instance))
                os.replace(os.path.join(instance, "worker-0.log"),
                           os.path.join(instance, f"worker-{name}.log"))
            common.wait_for_workers(app, len(PERSONAL_CHANNELS))
            _, approver = common.users(app)
            started = time.time()
            common.approve(app, announcement_id, approver)
            with app.app_context():
                totals = jobs.plan_announcement(announcement_id)
            planned_at = time.time()
            finished, counts = None, {}
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                with app.extensions["engine"].connect() as conn:
                    counts = ledger.counts(conn, announcement_id)
                done = sum(n[s] for c, n in counts.items()
                           for s in (("sent",) if c == "wechat" else ()) + ("delivered", "confirmed",
                                                                               "failed", "cancelled"))
                if done >= sum(totals.values()):
                    finished = time.time()
                    break
                time.sleep(0.1)
            callbacks = twilio.posted()
        finally:
            common.stop_processes(workers + [server])
            log.close()
        if finished is None:
            raise SystemExit(f"the ledger did not settle: {counts}")
        with app.extensions["engine"].connect() as conn:
            sent_year = (conn.execute(select(announcements.c.sent, announcements.c.created_at)
                                      .where(announcements.c.id == announcement_id)).first())
            year = (sent_year.sent or sent_year.created_at).year
            rows = conn.execute(
                select(deliveries.c.channel, deliveries.c.recipient_id, deliveries.c.status,
                       deliveries.c.updated_at, residents.c.visually_impaired,
                       residents.c.birth_year)
                .join(residents, residents.c.id == deliveries.c.recipient_id)
                .where(deliveries.c.announcement_id == announcement_id,
                       deliveries.c.channel.in_(PERSONAL_CHANNELS),
                       or_(deliveries.c.status.in_(("delivered", "confirmed")),
                           (deliveries.c.channel == "wechat") & (deliveries.c.status == "sent"))))
            first: dict[int, tuple[float, bool]] = {}
            by_channel: Counter = Counter()
            lag = []
            ids = {}
            for row in rows:
                at = as_utc(row.updated_at).timestamp() - started
                by_channel[row.channel] += 1
                if row.recipient_id not in first or at < first[row.recipient_id][0]:
                    first[row.recipient_id] = (at, is_vulnerable(row, year))
            for row in conn.execute(select(deliveries.c.id, deliveries.c.channel,
                                           deliveries.c.updated_at)
                                    .where(deliveries.c.announcement_id == announcement_id,
                                           deliveries.c.channel.in_(("sms", "voice")))):
                ids[f"{row.channel}/{row.id}"] = as_utc(row.updated_at).timestamp()
            for key, posted_at in callbacks["posted"].items():
                if key in ids:
                    lag.append(ids[key] - posted_at)
            total_residents = conn.execute(select(residents.c.id)).all()
            vulnerable_total = sum(n for (_, v, _), n in sets.items() if v)
            reached_count = ledger.reached_count(conn, announcement_id)
        app.extensions["engine"].dispose()

    overall = _curve([(t, 1.0) for t, _ in first.values()], len(total_residents))
    vulnerable = _curve([(t, 1.0) for t, v in first.values() if v], vulnerable_total)
    lag.sort()
    return {"county": county, "summary": summary, "sets": sets, "totals": totals,
            "counts": counts, "versions": versions, "curve": {"overall": overall,
                                                              "vulnerable": vulnerable},
            "seconds": finished - started, "plan_seconds": planned_at - started,
            "reached_by_channel": dict(by_channel), "reached": len(first),
            "ledger_reached_count": reached_count, "callback_failures": callbacks["failed"],
            "callback_failure_sample": callbacks["failures"],
            "lag_median": lag[len(lag) // 2] if lag else None, "lag_max": lag[-1] if lag else None}


# --- (b) the county at full size -----------------------------------------------------------

def full_size(args, rates: dict[str, float]) -> tuple[dict, Counter]:
    """The preview of an extreme notice over every channel to a county of ``--full-residents``."""
    dummy = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "unused",
             "TWILIO_FROM_NUMBER": common.FROM_NUMBER, "TWILIO_API_BASE": "http://127.0.0.1:9",
             "WECHAT_APP_ID": "unused", "WECHAT_APP_SECRET": "unused",
             "WECHAT_TEMPLATE_ID": common.WECHAT_TEMPLATE, "WECHAT_API_BASE": "http://127.0.0.1:9",
             "MQTT_URL": "mqtt://127.0.0.1:9",
             "SMS_RATE": rates["sms"], "VOICE_RATE": rates["voice"],
             "WECHAT_RATE": rates["wechat"], "LOUDSPEAKER_RATE": rates["loudspeaker"]}
    with common.scratch_database(args.database) as database_url, \
            common.scratch_redis(args.redis_db) as redis_url, \
            tempfile.TemporaryDirectory(prefix="tongbao-bench-") as instance:
        app = common.make_app(database_url, redis_url, instance, **dummy)
        common.load_county(app, args.full_residents)
        announcement_id = common.create_announcement(
            app, channels=[*PERSONAL_CHANNELS, "loudspeaker"])
        summary, sets = channel_sets(app, announcement_id)
        app.extensions["engine"].dispose()
    return summary, sets


def required_sms_rate(sets, counts, rates, target_share=0.9, seconds=TARGET_MINUTES * 60):
    """The SMS rate at which the current policy reaches ``target_share`` in ``seconds`` (bisection)."""
    low, high = rates["sms"], 1e6
    if share_at(estimate(sets, counts, {**rates, "sms": high})["overall"], seconds) < target_share:
        return None
    for _ in range(40):
        middle = (low * high) ** 0.5
        curve = estimate(sets, counts, {**rates, "sms": middle})["overall"]
        low, high = (middle, high) if share_at(curve, seconds) < target_share else (low, middle)
    return high


# --- output --------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f} %"


def _min(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds / 60:.1f}"


def plot(path: str, scale: float, actual: dict, small_estimate: dict, mixes: dict,
         residents: int, full_residents: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 6), dpi=110)
    colours = {"current policy": "tab:blue", "+ loudspeakers reach their village": "tab:green",
               "WeChat faster": "tab:orange"}
    for name, curves in mixes.items():
        colour = next((c for k, c in colours.items() if name.startswith(k)), "tab:purple")
        for key, style in (("overall", "-"), ("vulnerable", ":")):
            times, shares = curves[key]
            axis.step([0.0] + [t / 60 for t in times], [0.0] + shares, style, where="post",
                      color=colour, label=f"estimate {full_residents:,}: {name} ({key})")
    for key, style in (("overall", "-"), ("vulnerable", ":")):
        times, shares = actual["curve"][key]
        axis.step([0.0] + [t * scale / 60 for t in times], [0.0] + shares, style, where="post",
                  color="black", linewidth=1.2,
                  label=f"actual run {residents:,}, time × {scale:g} ({key})")
    axis.axhline(0.9, color="grey", linewidth=0.8)
    axis.axvline(TARGET_MINUTES, color="red", linewidth=0.8)
    axis.text(TARGET_MINUTES * 1.05, 0.02, "10 min", color="red")
    axis.set_xscale("log")
    axis.set_xlim(0.1, max(1000.0, TARGET_MINUTES * 2))
    axis.set_ylim(0, 1.02)
    axis.set_xlabel(f"minutes after approval (county of {full_residents:,}; log scale)")
    axis.set_ylabel("share of residents reached by ≥ 1 channel")
    axis.set_title("Reach curve: extreme notice, SMS 100/s, calls 20/s, WeChat 50/s, loudspeakers 100/s")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=2000, help="the actual run's county")
    parser.add_argument("--full-residents", type=int, default=FULL_RESIDENTS,
                        help="the estimator's county")
    parser.add_argument("--sms-rate", type=float, default=100.0)
    parser.add_argument("--voice-rate", type=float, default=20.0)
    parser.add_argument("--wechat-rate", type=float, default=50.0)
    parser.add_argument("--loudspeaker-rate", type=float, default=100.0)
    parser.add_argument("--wechat-fast-rate", type=float, default=500.0)
    parser.add_argument("--plan-seconds", type=float, default=74.3,
                        help="full size: approval → plan written (loudspeakers start then)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis-db", type=int, default=common.DEFAULT_REDIS_DB)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--plot", help="write the PNG plot here")
    args = parser.parse_args(argv)

    rates = {"sms": args.sms_rate, "voice": args.voice_rate, "wechat": args.wechat_rate,
             "loudspeaker": args.loudspeaker_rate}
    scale = args.full_residents / args.residents

    actual = actual_run(args, rates)
    small = estimate(actual["sets"], actual["summary"]["deliveries"], rates)

    full_summary, full_sets = full_size(args, rates)
    counts = full_summary["deliveries"]
    mixes = {
        "current policy": estimate(full_sets, counts, rates),
        "+ loudspeakers reach their village": estimate(full_sets, counts, rates, loudspeakers=True,
                                                       plan_seconds=args.plan_seconds),
        f"WeChat faster ({args.wechat_fast_rate:g}/s)": estimate(
            full_sets, counts, {**rates, "wechat": args.wechat_fast_rate}),
    }
    needed = required_sms_rate(full_sets, counts, rates)
    if needed and needed > rates["sms"] * 1.001:
        mixes[f"SMS at {needed:,.0f}/s"] = estimate(full_sets, counts, {**rates, "sms": needed})

    # the table: minute of the full county → share reached
    names = list(mixes)
    print()
    print(f"Reach curve: share reached by ≥ 1 personal channel (overall / vulnerable). "
          f"Actual: {args.residents:,} residents, its seconds × {scale:g}; "
          f"estimates: {args.full_residents:,} residents.")
    header = ["minute", "actual run", f"estimate {args.residents:,}"] + [f"est.: {n}" for n in names]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" for _ in header) + "|")
    table = []
    for minute in MINUTES:
        seconds = minute * 60
        small_seconds = seconds / scale
        row = {"minute": minute,
               "actual": [share_at(actual["curve"][k], small_seconds) for k in ("overall", "vulnerable")],
               "estimate_small": [share_at(small[k], small_seconds) for k in ("overall", "vulnerable")],
               "mixes": {n: [share_at(mixes[n][k], seconds) for k in ("overall", "vulnerable")]
                         for n in names}}
        table.append(row)
        cells = [str(minute)] + [f"{_pct(a)} / {_pct(b)}" for a, b in
                                 [row["actual"], row["estimate_small"],
                                  *(row["mixes"][n] for n in names)]]
        print("| " + " | ".join(cells) + " |")

    t90 = {n: {k: time_to(mixes[n][k], 0.9) for k in ("overall", "vulnerable")} for n in names}
    actual_t90 = {k: time_to(actual["curve"][k], 0.9) for k in ("overall", "vulnerable")}
    small_t90 = {k: time_to(small[k], 0.9) for k in ("overall", "vulnerable")}
    ratio = (actual_t90["overall"] / small_t90["overall"]
             if actual_t90["overall"] and small_t90["overall"] else float("nan"))
    meets = [n for n in names if t90[n]["overall"] is not None
             and t90[n]["overall"] <= TARGET_MINUTES * 60]

    per_channel = ", ".join(f"{c} {actual['totals'].get(c, 0):,}" for c in PERSONAL_CHANNELS)
    full_channels = ", ".join(f"{c} {counts.get(c, 0):,}" for c in (*PERSONAL_CHANNELS, "loudspeaker"))
    unreachable = sum(n for (s, _, _), n in full_sets.items() if not s)
    rows = [
        ("database", actual["versions"][0], actual["versions"][1]),
        ("rates (/s)", f"SMS {rates['sms']:g}, voice {rates['voice']:g}, WeChat {rates['wechat']:g}, "
         f"loudspeaker {rates['loudspeaker']:g}", "configured as a deployment would"),
        ("actual run: residents", actual["county"]["residents"], f"deliveries: {per_channel}"),
        ("actual run: reached (ledger)", actual["reached"],
         f"by channel {actual['reached_by_channel']}; gateway's reached count "
         f"{actual['ledger_reached_count']:,} (SMS/voice only: WeChat stays 'sent')"),
        ("actual run: approval → settled (s)", actual["seconds"],
         f"plan {actual['plan_seconds']:.2f} s; time × {scale:g} = full-size equivalent"),
        ("actual: 90 % overall / vulnerable (s)",
         f"{actual_t90['overall'] or float('nan'):.2f} / {actual_t90['vulnerable'] or float('nan'):.2f}",
         f"= {_min(actual_t90['overall'] and actual_t90['overall'] * scale)} / "
         f"{_min(actual_t90['vulnerable'] and actual_t90['vulnerable'] * scale)} min at full size"),
        ("floor: estimate at the run's size, 90 % (s)",
         f"{small_t90['overall'] or float('nan'):.2f} / {small_t90['vulnerable'] or float('nan'):.2f}",
         "same model, the run's own preview and rates"),
        ("ratio to floor (actual / estimated time to 90 %)", ratio, ""),
        ("ledger updated_at − callback post: median / max (s)",
         f"{actual['lag_median'] or 0:.3f} / {actual['lag_max'] or 0:.3f}",
         f"SMS and calls; callbacks failed: {actual['callback_failures']}"),
        ("full size: residents", full_summary["residents"], f"deliveries: {full_channels}"),
        ("full size: unreachable by any personal channel", unreachable, ""),
        *[(f"90 % at (min): {n}", f"{_min(t90[n]['overall'])} / {_min(t90[n]['vulnerable'])}",
           "overall / vulnerable; " + ("meets" if n in meets else "misses")
           + f" the {TARGET_MINUTES}-minute target") for n in names],
        ("mixes reaching 90 % within 10 min", ", ".join(meets) or "none", ""),
    ]
    result = {"script": "reach_curve", "database": args.database, "residents": args.residents,
              "full_residents": args.full_residents, "scale": scale, "rates": rates,
              "actual_residents": actual["county"]["residents"], "actual_reached": actual["reached"],
              "actual_deliveries": actual["totals"], "actual_seconds": actual["seconds"],
              "actual_t90_seconds": actual_t90, "estimate_small_t90_seconds": small_t90,
              "ratio_to_floor": ratio, "ledger_reached_count": actual["ledger_reached_count"],
              "callback_failures": actual["callback_failures"],
              "callback_lag_median": actual["lag_median"], "callback_lag_max": actual["lag_max"],
              "full_deliveries": counts, "full_unreachable": unreachable,
              "t90_minutes": {n: {k: (v / 60 if v is not None else None) for k, v in d.items()}
                              for n, d in t90.items()},
              "required_sms_rate": needed, "meets_target": meets, "table": table,
              "machine": common.machine(), "versions": actual["versions"]}
    if args.plot:
        plot(args.plot, scale, actual, small, mixes, args.residents, args.full_residents)
        rows.append(("plot", args.plot, "PNG"))
        result["plot"] = args.plot
    common.print_table(f"Reach curve: actual {args.residents:,} residents, estimate "
                       f"{args.full_residents:,}, {args.database}", rows, result)
    return result


if __name__ == "__main__":
    main()
