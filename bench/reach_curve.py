"""Reach curve: the share of residents reached over time, measured from the ledger and against
the preview's reach forecast (``gateway.delivery.forecast``: one model for both).

    .venv/bin/python -m bench.reach_curve --residents 6000 --full-residents 1000000 \\
        --plan-seconds S --plot docs/reach-curve.png

Rates as a real deployment would configure them: SMS on a short code at 100/s
(``SMS_RATE``), calls at Twilio's default 1 a second (``VOICE_RATE``) on 10 concurrent calls
(``VOICE_CONCURRENT_CALLS``), WeChat template messages at 50/s (``WECHAT_RATE``), loudspeakers
at 100/s (``LOUDSPEAKER_RATE``). "Reached": by at least one personal channel (SMS or a call
``delivered``/``confirmed``; WeChat ``sent``, since the gateway gets no delivery report from
WeChat). Vulnerable: visually impaired or 65 and over (``gateway.delivery.reach.is_vulnerable``).

(a) **Actual run against the prediction.** A synthetic county of ``--residents`` and an
``extreme`` announcement over SMS, voice and WeChat at the real rates. Its speech is made
before approval (as at submission), then the preview gives the prediction
(``reach_forecast``: seconds to 90 %, the curve). One ``flask worker`` per channel queue (as
``flask serve`` runs them), registered when the clock starts at approval; planning in this
process; the gateway's web app under waitress for the provider callbacks. The Twilio stand-in
(``tests.fakes.twilio_server.FakeTwilio``, own process) posts the signed callbacks Twilio
would: an SMS ``delivered`` right after accepting it; a call holds its line for
``--call-seconds`` (default: the preview's own call length, the speech once and the wait for a
key), then the resident's key ``1`` (the gather) and ``completed``, which frees the line.
WeChat goes to ``tests.fakes.wechat_server.FakeWechat``. The curve is read from the ledger:
each resident's earliest ``deliveries.updated_at`` among rows that reached them. The stand-in
also notes when it had each resident reached (an SMS accepted, a call over) and every SMS it
accepted: the table gives how long the ledger took to know after the provider did, and the
longest pause between two SMS sends, so a late curve shows whether the sends or the callbacks
were late. The run ends when every delivery is settled or at ``--measure-seconds`` (default:
1.5 × the predicted time to 90 %, at least 30 s), whichever is first: calls on 10 lines take
hours for a county, so the curve is compared over the window measured, and the calls completed
by its end against the prediction's count for that moment. If 90 % are not reached by then, the run goes on until they
are (or ``--timeout``).

The floor is the prediction: the preview's time to 90 % for this run (its model is in
``gateway/delivery/forecast.py``); the ratio is the measured time to 90 % over it (target:
within 10 %).

(b) **The forecast at full size.** A county of ``--full-residents`` in a scratch database; the
preview's own grouping (``preview._groups`` + the policy's ``channels_for``, exactly as the
preview applies it) gives the set of channels each resident gets, and the same model gives
the curve for several mixes: the current policy; plus loudspeakers counted as reaching their
village (they start when the plan ends, ``--plan-seconds``: bench 1's SQLite plan of 1M;
``bench/run_all.sh`` passes the figure bench 1 has just measured); WeChat at
``--wechat-fast-rate``; and the SMS rate the current policy would need for 90 % in 10 minutes.
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
from typing import NamedTuple

from bench import common
from channels.registry import PERSONAL_CHANNELS
from gateway.delivery import forecast

FULL_RESIDENTS = 1_000_000
TARGET_MINUTES = 10
MINUTES = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 150, 180, 240, 360, 480, 600, 900)


# --- the model (gateway.delivery.forecast) over the bench's resident groups --------------------

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


class Modelled(NamedTuple):
    """The forecast's curve for one group of residents: their channel sets and the queues."""
    sets: Counter
    queues: dict

    def share_at(self, seconds: float) -> float:
        return forecast.share_at(self.sets, self.queues, seconds)

    def time_to(self, share: float) -> float | None:
        return forecast.time_to(self.sets, self.queues, share)


def estimate(sets: Counter, counts: dict[str, int], rates: dict[str, float], *,
             call_seconds: float = 0.0, lines: int = 0, loudspeakers: bool = False,
             plan_seconds: float = 0.0) -> dict[str, Modelled]:
    """The forecast's curves, overall and for the vulnerable; with ``loudspeakers`` a village's
    loudspeaker counts as reaching its residents, starting when the plan ends."""
    channels = [*PERSONAL_CHANNELS, *(("loudspeaker",) if loudspeakers else ())]
    queues = forecast.drain_queues({c: counts.get(c, 0) for c in channels}, rates,
                                   call_seconds=call_seconds, lines=lines,
                                   starts={"loudspeaker": plan_seconds})
    overall: Counter = Counter()
    vulnerable: Counter = Counter()
    for (personal, is_vulnerable, speaker), n in sets.items():
        heard = personal | ({"loudspeaker"} if loudspeakers and speaker else set())
        overall[heard] += n
        if is_vulnerable:
            vulnerable[heard] += n
    return {"overall": Modelled(overall, queues), "vulnerable": Modelled(vulnerable, queues)}


def _curve(points: list[float], total: int) -> tuple[list[float], list[float]]:
    """A measured step curve: (reach times sorted, share reached by each)."""
    points.sort()
    return points, [min(1.0, (i + 1) / total) if total else 0.0 for i in range(len(points))]


def measured_share_at(curve, seconds: float) -> float:
    times, shares = curve
    index = bisect.bisect_right(times, seconds)
    return shares[index - 1] if index else 0.0


def measured_time_to(curve, share: float) -> float | None:
    times, shares = curve
    index = bisect.bisect_left(shares, share - 1e-12)
    return times[index] if index < len(times) else None


# --- the Twilio stand-in that answers with callbacks -----------------------------------------

def _serve_twilio(conn) -> None:
    """Child process: a FakeTwilio that posts an SMS's callback right after accepting it, and a
    call's (the key 1, then ``completed``) the call's length after (``hold_calls``): the call
    holds its line."""
    sys.path.insert(0, common.ROOT)
    from tests.fakes.twilio_server import FakeTwilio

    work: queue.Queue = queue.Queue()
    call_seconds = [0.0]
    # "sms/<delivery id>" -> when the provider knew the resident was reached (the SMS accepted,
    # the call over) and its callback was put in line to be posted
    reached: dict[str, float] = {}
    sms_accepted: list[float] = []
    failures: list[str] = []

    def hand_over(sid: str, form) -> None:
        reached["/".join(form["StatusCallback"].rsplit("/", 2)[-2:])] = time.time()
        work.put(sid)

    class Answering(FakeTwilio):
        def __init__(self):
            super().__init__()
            self.requests = deque(maxlen=100)

        def _message(self, form):
            resource = super()._message(form)
            sms_accepted.append(time.time())
            hand_over(resource["sid"], form)
            return resource

        def _call(self, form):
            resource = super()._call(form)
            ends = threading.Timer(call_seconds[0], hand_over, args=(resource["sid"], form))
            ends.daemon = True
            ends.start()
            return resource

    fake = Answering()
    fake.__enter__()

    def answer() -> None:
        while True:
            sid = work.get()
            if sid is None:
                return
            try:
                if sid.startswith("SM"):
                    response = fake.send_status(sid, "delivered")
                else:
                    response = fake.press(sid, "1")  # the gather: the resident pressed 1
                    if response.ok:
                        response = fake.send_status(sid, "completed",
                                                    duration=round(call_seconds[0]))
                if not response.ok:
                    failures.append(f"{sid}: {response.status_code}")
            except Exception as error:  # noqa: BLE001 - reported to the parent
                failures.append(f"{sid}: {error!r}")

    threads = [threading.Thread(target=answer, daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    conn.send({"url": fake.url, "settings": fake.settings})
    while True:
        message = conn.recv()
        if isinstance(message, tuple):  # ("hold", seconds)
            call_seconds[0] = message[1]
            conn.send("ok")
        elif message == "provider side":
            conn.send({"pending": work.qsize(), "reached": dict(reached),
                       "sms_accepted": sorted(sms_accepted), "failures": failures[:20],
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

    def hold_calls(self, seconds: float) -> None:
        """Each call from now on lasts ``seconds`` before its callbacks."""
        self._conn.send(("hold", seconds))
        self._conn.recv()

    def provider_side(self) -> dict:
        """What the stand-in saw: when each resident was reached, when each SMS was accepted."""
        self._conn.send("provider side")
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

def _reaching():
    """Ledger rows that reached their resident: a personal delivery delivered or confirmed, or a
    WeChat message sent (WeChat reports no delivery)."""
    from sqlalchemy import or_

    from gateway.store.schema import deliveries

    return deliveries.c.channel.in_(PERSONAL_CHANNELS) & or_(
        deliveries.c.status.in_(("delivered", "confirmed")),
        (deliveries.c.channel == "wechat") & (deliveries.c.status == "sent"))


def actual_run(args, rates: dict[str, float]) -> dict:
    from sqlalchemy import func, select

    from gateway.delivery import jobs, lifecycle, media
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
                                       VOICE_CONCURRENT_CALLS=args.concurrent_calls,
                                       PUBLIC_BASE_URL=public)
        config = {k: (float(v) if k.endswith("_RATE") else v) for k, v in provider.items()}
        config["VOICE_CONCURRENT_CALLS"] = args.concurrent_calls
        app = common.make_app(database_url, redis_url, instance, **config)
        county = common.load_county(app, args.residents)
        announcement_id = common.create_announcement(app, channels=list(PERSONAL_CHANNELS))
        with app.app_context(), app.extensions["engine"].connect() as conn:
            announcement = lifecycle.get(conn, announcement_id)
            media.rendered_for(announcement, "voice", announcement.language)  # as at submission
        summary, sets = channel_sets(app, announcement_id)
        predicted = summary["reach_forecast"]
        call_seconds = args.call_seconds or predicted["call_seconds"]
        twilio.hold_calls(call_seconds)
        window = args.measure_seconds or max(30.0, 1.5 * (predicted["seconds_to_90_percent"] or 0))
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
            audience = county["residents"]
            while time.time() - started < args.timeout:
                with app.extensions["engine"].connect() as conn:
                    counts = ledger.counts(conn, announcement_id)
                    past_window = time.time() - started >= window
                    reached_enough = past_window and conn.execute(
                        select(func.count(func.distinct(deliveries.c.recipient_id)))
                        .where(deliveries.c.announcement_id == announcement_id,
                               _reaching())).scalar_one() >= 0.9 * audience
                done = sum(n[s] for c, n in counts.items()
                           for s in (("sent",) if c == "wechat" else ()) + ("delivered", "confirmed",
                                                                               "failed", "cancelled"))
                if done >= sum(totals.values()):
                    finished = time.time()
                    break
                if reached_enough:
                    break
                time.sleep(0.1)
            ended = finished or time.time()
            callbacks = twilio.provider_side()
        finally:
            common.stop_processes(workers + [server])
            log.close()
        with app.extensions["engine"].connect() as conn:
            sent_year = (conn.execute(select(announcements.c.sent, announcements.c.created_at)
                                      .where(announcements.c.id == announcement_id)).first())
            year = (sent_year.sent or sent_year.created_at).year
            rows = conn.execute(
                select(deliveries.c.channel, deliveries.c.recipient_id, deliveries.c.status,
                       deliveries.c.updated_at, residents.c.visually_impaired,
                       residents.c.birth_year)
                .join(residents, residents.c.id == deliveries.c.recipient_id)
                .where(deliveries.c.announcement_id == announcement_id, _reaching()))
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
            for key, reached_at in callbacks["reached"].items():
                if key in ids:
                    lag.append(ids[key] - reached_at)
            total_residents = conn.execute(select(residents.c.id)).all()
            vulnerable_total = sum(n for (_, v, _), n in sets.items() if v)
            reached_count = ledger.reached_count(conn, announcement_id)
        app.extensions["engine"].dispose()

    overall = _curve([t for t, _ in first.values()], len(total_residents))
    vulnerable = _curve([t for t, v in first.values() if v], vulnerable_total)
    lag.sort()
    accepted = callbacks["sms_accepted"]
    pause, pause_at = max(((later - earlier, earlier - started) for earlier, later
                           in zip(accepted, accepted[1:])), default=(None, None))
    return {"county": county, "summary": summary, "sets": sets, "totals": totals,
            "counts": counts, "versions": versions, "curve": {"overall": overall,
                                                              "vulnerable": vulnerable},
            "seconds": ended - started, "settled": finished is not None,
            "predicted": predicted, "call_seconds": call_seconds,
            "plan_seconds": planned_at - started,
            "reached_by_channel": dict(by_channel), "reached": len(first),
            "ledger_reached_count": reached_count, "callback_failures": callbacks["failed"],
            "callback_failure_sample": callbacks["failures"],
            "lag_median": lag[len(lag) // 2] if lag else None, "lag_max": lag[-1] if lag else None,
            "sms_pause": pause, "sms_pause_at": pause_at}


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


def required_sms_rate(sets, counts, rates, calls, target_share=0.9,
                      seconds=TARGET_MINUTES * 60):
    """The SMS rate at which the current policy reaches ``target_share`` in ``seconds`` (bisection)."""
    low, high = rates["sms"], 1e6
    if estimate(sets, counts, {**rates, "sms": high}, **calls)["overall"].share_at(seconds) \
            < target_share:
        return None
    for _ in range(40):
        middle = (low * high) ** 0.5
        curve = estimate(sets, counts, {**rates, "sms": middle}, **calls)["overall"]
        low, high = (middle, high) if curve.share_at(seconds) < target_share else (low, middle)
    return high


# --- output --------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f} %"


def _min(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds / 60:.1f}"


def _s(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f}"


def plot(path: str, actual: dict, predicted: dict, mixes: dict, residents: int,
         full_residents: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (run_axis, full_axis) = plt.subplots(1, 2, figsize=(14, 6), dpi=110)
    seconds = [actual["seconds"] * i / 400 for i in range(401)]
    for key, style in (("overall", "-"), ("vulnerable", ":")):
        times, shares = actual["curve"][key]
        run_axis.step([0.0] + times, [0.0] + shares, style, where="post", color="black",
                      label=f"measured ({key})")
        run_axis.plot(seconds, [predicted[key].share_at(t) for t in seconds], style,
                      color="tab:blue", label=f"preview's forecast ({key})")
    run_axis.axhline(0.9, color="grey", linewidth=0.8)
    run_axis.set_xlabel(f"seconds after approval ({residents:,} residents)")
    run_axis.set_ylabel("share of residents reached by ≥ 1 channel")
    run_axis.set_title("The run against the preview's forecast")
    run_axis.set_ylim(0, 1.02)
    run_axis.grid(True, alpha=0.3)
    run_axis.legend(fontsize=7, loc="lower right")

    colours = {"current policy": "tab:blue", "+ loudspeakers reach their village": "tab:green",
               "WeChat faster": "tab:orange"}
    minutes = [10 ** (-1 + 4 * i / 400) for i in range(401)]
    for name, curves in mixes.items():
        colour = next((c for k, c in colours.items() if name.startswith(k)), "tab:purple")
        for key, style in (("overall", "-"), ("vulnerable", ":")):
            full_axis.plot(minutes, [curves[key].share_at(m * 60) for m in minutes], style,
                           color=colour, label=f"{name} ({key})")
    full_axis.axhline(0.9, color="grey", linewidth=0.8)
    full_axis.axvline(TARGET_MINUTES, color="red", linewidth=0.8)
    full_axis.text(TARGET_MINUTES * 1.05, 0.02, "10 min", color="red")
    full_axis.set_xscale("log")
    full_axis.set_xlim(0.1, 1000.0)
    full_axis.set_ylim(0, 1.02)
    full_axis.set_xlabel(f"minutes after approval (county of {full_residents:,}; log scale)")
    full_axis.set_title("Forecast at full size")
    full_axis.grid(True, which="both", alpha=0.3)
    full_axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=6000, help="the actual run's county")
    parser.add_argument("--full-residents", type=int, default=FULL_RESIDENTS,
                        help="the full-size forecast's county")
    parser.add_argument("--sms-rate", type=float, default=100.0)
    parser.add_argument("--voice-rate", type=float, default=1.0, help="calls placed a second")
    parser.add_argument("--concurrent-calls", type=int, default=10)
    parser.add_argument("--call-seconds", type=float,
                        help="how long each call holds its line (default: the preview's)")
    parser.add_argument("--wechat-rate", type=float, default=50.0)
    parser.add_argument("--loudspeaker-rate", type=float, default=100.0)
    parser.add_argument("--wechat-fast-rate", type=float, default=500.0)
    parser.add_argument("--plan-seconds", type=float, default=74.3,
                        help="full size: approval → plan written (loudspeakers start then)")
    parser.add_argument("--measure-seconds", type=float,
                        help="end the run then, once 90 %% are reached (default: 1.5 × the "
                             "predicted time to 90 %%, ≥ 30 s)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="end the run then in any case")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis-db", type=int, default=common.DEFAULT_REDIS_DB)
    parser.add_argument("--plot", help="write the PNG plot here")
    args = parser.parse_args(argv)

    rates = {"sms": args.sms_rate, "voice": args.voice_rate, "wechat": args.wechat_rate,
             "loudspeaker": args.loudspeaker_rate}
    actual = actual_run(args, rates)
    forecast_of_run = actual["predicted"]
    calls = {"call_seconds": forecast_of_run["call_seconds"], "lines": args.concurrent_calls}
    predicted = estimate(actual["sets"], actual["summary"]["deliveries"], rates, **calls)
    # the bench's model over the run's groups must be the preview's own forecast
    modelled_t90 = predicted["overall"].time_to(0.9)
    if (modelled_t90 is None) != (forecast_of_run["seconds_to_90_percent"] is None) or (
            modelled_t90 is not None
            and abs(modelled_t90 - forecast_of_run["seconds_to_90_percent"]) > 0.1):
        raise SystemExit(f"the bench's model ({modelled_t90}) disagrees with the preview's "
                         f"forecast ({forecast_of_run['seconds_to_90_percent']})")

    full_summary, full_sets = full_size(args, rates)
    counts = full_summary["deliveries"]
    mixes = {
        "current policy": estimate(full_sets, counts, rates, **calls),
        "+ loudspeakers reach their village": estimate(full_sets, counts, rates, **calls,
                                                       loudspeakers=True,
                                                       plan_seconds=args.plan_seconds),
        f"WeChat faster ({args.wechat_fast_rate:g}/s)": estimate(
            full_sets, counts, {**rates, "wechat": args.wechat_fast_rate}, **calls),
    }
    needed = required_sms_rate(full_sets, counts, rates, calls)
    if needed and needed > rates["sms"] * 1.001:
        mixes[f"SMS at {needed:,.0f}/s"] = estimate(full_sets, counts, {**rates, "sms": needed},
                                                   **calls)

    # the run: measured against predicted, by the second
    print()
    print(f"Reach over the run ({args.residents:,} residents): share reached by ≥ 1 personal "
          f"channel (overall / vulnerable), measured and as the preview predicted.")
    print("| second | measured | predicted |")
    print("|---:|---:|---:|")
    run_table = []
    for step in range(1, 11):
        second = actual["seconds"] * step / 10
        row = {"second": second,
               "measured": [measured_share_at(actual["curve"][k], second)
                            for k in ("overall", "vulnerable")],
               "predicted": [predicted[k].share_at(second) for k in ("overall", "vulnerable")]}
        run_table.append(row)
        print(f"| {second:.1f} | {_pct(row['measured'][0])} / {_pct(row['measured'][1])} | "
              f"{_pct(row['predicted'][0])} / {_pct(row['predicted'][1])} |")

    # the full-size forecast: minute → share reached
    names = list(mixes)
    print()
    print(f"Forecast at full size ({args.full_residents:,} residents): share reached "
          f"(overall / vulnerable).")
    print("| minute | " + " | ".join(names) + " |")
    print("|---:|" + "|".join("---:" for _ in names) + "|")
    table = []
    for minute in MINUTES:
        row = {"minute": minute,
               "mixes": {n: [mixes[n][k].share_at(minute * 60) for k in ("overall", "vulnerable")]
                         for n in names}}
        table.append(row)
        print(f"| {minute} | " + " | ".join(f"{_pct(a)} / {_pct(b)}"
                                           for a, b in row["mixes"].values()) + " |")

    t90 = {n: {k: mixes[n][k].time_to(0.9) for k in ("overall", "vulnerable")} for n in names}
    measured_t90 = {k: measured_time_to(actual["curve"][k], 0.9) for k in ("overall", "vulnerable")}
    predicted_t90 = {k: predicted[k].time_to(0.9) for k in ("overall", "vulnerable")}
    ratio = (measured_t90["overall"] / predicted_t90["overall"]
             if measured_t90["overall"] and predicted_t90["overall"] else float("nan"))
    meets = [n for n in names if t90[n]["overall"] is not None
             and t90[n]["overall"] <= TARGET_MINUTES * 60]
    voice_queue = predicted["overall"].queues.get("voice")
    calls_predicted = (round(voice_queue.progress(actual["seconds"])
                             * actual["summary"]["deliveries"].get("voice", 0))
                       if voice_queue else 0)
    calls_measured = actual["reached_by_channel"].get("voice", 0)

    per_channel = ", ".join(f"{c} {actual['totals'].get(c, 0):,}" for c in PERSONAL_CHANNELS)
    full_channels = ", ".join(f"{c} {counts.get(c, 0):,}" for c in (*PERSONAL_CHANNELS, "loudspeaker"))
    unreachable = sum(n for (s, _, _), n in full_sets.items() if not s)
    rows = [
        ("database", actual["versions"][0], actual["versions"][1]),
        ("rates", f"SMS {rates['sms']:g}/s, calls {rates['voice']:g}/s on "
         f"{args.concurrent_calls} lines, WeChat {rates['wechat']:g}/s, "
         f"loudspeaker {rates['loudspeaker']:g}/s", "configured as a deployment would"),
        ("a call holds its line (s)", actual["call_seconds"],
         f"preview: {forecast_of_run['call_seconds']} s (speech "
         f"{'measured' if forecast_of_run['speech_seconds_measured'] else 'guessed'} + "
         f"gather wait); → {forecast_of_run['calls_per_second']} calls/s"),
        ("run: residents", actual["county"]["residents"], f"deliveries: {per_channel}"),
        ("run: measured for (s)", actual["seconds"],
         "every delivery settled" if actual["settled"] else
         f"window ended (calls on {args.concurrent_calls} lines outlast it); "
         f"plan {actual['plan_seconds']:.2f} s"),
        ("run: reached in the window (ledger)", actual["reached"],
         f"by channel {actual['reached_by_channel']}; gateway's reached count "
         f"{actual['ledger_reached_count']:,} (SMS/voice only: WeChat stays 'sent')"),
        ("calls completed in the window: measured / predicted", f"{calls_measured} / "
         f"{calls_predicted}", "the lines' limit at work"),
        ("measured: 90 % overall / vulnerable (s)",
         f"{_s(measured_t90['overall'])} / {_s(measured_t90['vulnerable'])}", "from the ledger"),
        ("floor: the preview's forecast, 90 % overall / vulnerable (s)",
         f"{_s(predicted_t90['overall'])} / {_s(predicted_t90['vulnerable'])}",
         f"reach_forecast of this notice; half {forecast_of_run['points'][0]['seconds']} s, "
         f"all reachable {forecast_of_run['points'][-1]['seconds']} s"),
        ("ratio to floor (measured / predicted time to 90 %)", ratio,
         "target: within 10 % — " + ("met" if abs(ratio - 1) <= 0.1 else "missed")),
        ("ledger knew − provider knew: median / max (s)",
         f"{actual['lag_median'] or 0:.3f} / {actual['lag_max'] or 0:.3f}",
         "SMS accepted or call over at the stand-in → the ledger's time for it; "
         f"callbacks failed: {actual['callback_failures']}"),
        ("longest pause between two SMS sends (s)", f"{actual['sms_pause'] or 0:.3f}",
         f"at {actual['sms_pause_at'] or 0:.1f} s; at the SMS rate the spacing is "
         f"{1 / rates['sms']:.3f} s"),
        ("full size: residents", full_summary["residents"], f"deliveries: {full_channels}"),
        ("full size: unreachable by any personal channel", unreachable, ""),
        *[(f"full size, 90 % at (min): {n}", f"{_min(t90[n]['overall'])} / {_min(t90[n]['vulnerable'])}",
           "overall / vulnerable; " + ("meets" if n in meets else "misses")
           + f" the {TARGET_MINUTES}-minute target") for n in names],
        ("mixes reaching 90 % within 10 min", ", ".join(meets) or "none", ""),
    ]
    result = {"script": "reach_curve", "database": args.database, "residents": args.residents,
              "full_residents": args.full_residents, "rates": rates,
              "concurrent_calls": args.concurrent_calls, "call_seconds": actual["call_seconds"],
              "actual_residents": actual["county"]["residents"], "actual_reached": actual["reached"],
              "actual_deliveries": actual["totals"], "actual_seconds": actual["seconds"],
              "settled": actual["settled"], "measured_t90_seconds": measured_t90,
              "predicted_t90_seconds": predicted_t90, "reach_forecast": forecast_of_run,
              "ratio_to_floor": ratio, "within_10_percent": abs(ratio - 1) <= 0.1,
              "calls_completed": {"measured": calls_measured, "predicted": calls_predicted},
              "ledger_reached_count": actual["ledger_reached_count"],
              "callback_failures": actual["callback_failures"],
              "callback_lag_median": actual["lag_median"], "callback_lag_max": actual["lag_max"],
              "sms_pause": actual["sms_pause"], "sms_pause_at": actual["sms_pause_at"],
              "full_deliveries": counts, "full_unreachable": unreachable,
              "t90_minutes": {n: {k: (v / 60 if v is not None else None) for k, v in d.items()}
                              for n, d in t90.items()},
              "required_sms_rate": needed, "meets_target": meets, "run_table": run_table,
              "table": table, "machine": common.machine(), "versions": actual["versions"]}
    if args.plot:
        plot(args.plot, actual, predicted, mixes, args.residents, args.full_residents)
        rows.append(("plot", args.plot, "PNG"))
        result["plot"] = args.plot
    common.print_table(f"Reach curve: run of {args.residents:,} residents against the preview's "
                       f"forecast; forecast at {args.full_residents:,}, {args.database}", rows, result)
    return result


if __name__ == "__main__":
    main()
