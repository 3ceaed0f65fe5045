"""Delivery throughput: deliveries over SMS and WeChat, end to end, against local provider fakes.

    .venv/bin/python -m bench.delivery_throughput --deliveries 100000 --database sqlite

The fakes (``tests.fakes.twilio_server.FakeTwilio`` and ``tests.fakes.wechat_server.FakeWechat``,
the same request/response shapes as the providers) each run in a process of their own and
record when they accept each send. Half the deliveries are SMS, half WeChat, written to the
ledger in bulk (``gateway.store.ledger.add``) in batches of ``BATCH_SIZE`` and queued as the plan
job queues them (``gateway.delivery.queues.enqueue_batches``), a round's share at a time, each
written just before it is queued (the reconciler queues batches it finds without a job); rates
are set far above what the fakes can take (SMS_RATE = WECHAT_RATE = 1e9), so nothing but the
work itself limits them.

End to end: two ``flask --app wsgi worker --queues sms,wechat`` subprocesses, started and
registered with rq before anything is queued, as a gateway's workers wait for a notice. The
batches go in ``--rounds`` rounds (a share of each channel's batches each); a round's clock runs
from its queuing until the ledger holds it all as sent (polled every 0.05 s from the counts
table), and the figure is all deliveries over the rounds' time together.

Floor, same run, same fakes: two processes, each a bare loop of the same channel classes'
``send`` (built with the gateway's own settings, the message rendered once), alternating
batches of ``BATCH_SIZE`` between SMS and WeChat as the workers' round-robin does, on
``--floor-deliveries`` sends (a sample: a rate is a rate). The sample runs in slices before,
between and after the rounds, and the floor is the slices together: this machine's CPU speed
drifts by a third within minutes (a VM's shared cores), and a floor taken only before and
after a long run compared other minutes than the run's. Each round's ratio to the slices
either side of it is printed too, to show how much the drift moved the figure. The fakes
keep connections alive as Twilio and WeChat do, so both the loop and the workers send over
kept-alive connections.

The gateway's own CPU per delivery, beyond the provider client library: the workers' CPU
(``getrusage`` of the children, the floor slices' processes taken off; a worker's idle time
between rounds stays in) less what a worker spends starting and stopping (measured
in the same run: one burst worker with nothing queued), per delivery, less the floor loop's
CPU per send (``time.process_time`` in each loop process around the timed loop only: the
library, ``requests`` and the message objects). What is left is claiming, leases, the rate
limiter, rendering, metrics and writing results down. Under ``--profile-workers`` the
workers' figures include cProfile's own cost.

The fakes' CPU use (a share of one core) is printed for both phases: near 100 % means the
fake, not the gateway, is what bounds the figure.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time

from bench import common

TARGET_RATIO = 0.9
TARGET_OWN_CPU_MS = 0.5  # the gateway's own CPU per delivery, beyond the client library
RATES = {"SMS_RATE": 1e9, "WECHAT_RATE": 1e9}
WORKERS = 2
ROUNDS = 5


def _channel_config(twilio, wechat) -> dict:
    return {"TWILIO_ACCOUNT_SID": twilio.settings["account_sid"],
            "TWILIO_AUTH_TOKEN": twilio.settings["auth_token"],
            "TWILIO_FROM_NUMBER": common.FROM_NUMBER, "TWILIO_API_BASE": twilio.url,
            "WECHAT_APP_ID": wechat.settings["app_id"],
            "WECHAT_APP_SECRET": wechat.settings["app_secret"],
            "WECHAT_TEMPLATE_ID": common.WECHAT_TEMPLATE, "WECHAT_API_BASE": wechat.url, **RATES}


def address(channel: str, i: int) -> str:
    return f"+86139{i:08d}" if channel == "sms" else f"o{i:027d}"


def prepare_ledger(app, announcement_id: int, per_channel: dict[str, int]) -> dict[str, int]:
    """The announcement sending, its counts in place; returns the batches per channel."""
    from sqlalchemy import update

    from gateway.store import ledger
    from gateway.store.schema import announcements

    size = app.config["BATCH_SIZE"]
    with app.extensions["engine"].begin() as conn:
        ledger.ensure_counts(conn, announcement_id, per_channel)
        conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                     .values(state="sending"))
    return {channel: -(-count // size) for channel, count in per_channel.items()}


def write_ledger(app, announcement_id: int, per_channel: dict[str, int],
                 batches: dict[str, range]) -> None:
    """These batches' deliveries in the ledger as the plan writes them. Written just before
    they are queued: the reconciler queues batches it finds in the ledger without a job."""
    from gateway.store import ledger

    size = app.config["BATCH_SIZE"]
    for channel, numbers in batches.items():
        end = min(per_channel[channel], numbers.stop * size)
        for low in range(numbers.start * size, end, 5000):
            rows = [{"channel": channel, "recipient_id": i, "address": address(channel, i),
                     "language": "zh", "batch": i // size}
                    for i in range(low, min(end, low + 5000))]
            with app.extensions["engine"].begin() as conn:
                ledger.add(conn, announcement_id, rows)


def queue_batches(app, announcement_id: int, batches: dict[str, range]) -> None:
    """The batch jobs queued as the plan job queues them."""
    from gateway.delivery import queues

    with app.app_context():
        for channel, numbers in batches.items():
            queues.enqueue_batches(announcement_id, channel, numbers)


def rounds_of(batches: dict[str, int], per_channel: dict[str, int], size: int,
              rounds: int) -> list[tuple[dict[str, range], int]]:
    """The batches split into ``rounds`` consecutive shares per channel, each with its
    number of deliveries."""
    shares = []
    for index in range(rounds):
        numbers = {channel: range(total * index // rounds, total * (index + 1) // rounds)
                   for channel, total in batches.items()}
        deliveries = sum(min(size, per_channel[channel] - batch * size)
                         for channel, batch_numbers in numbers.items() for batch in batch_numbers)
        shares.append((numbers, deliveries))
    return shares


def split(total: int, parts: int, multiple: int) -> list[int]:
    """``total`` in ``parts`` as even as can be, each a multiple of ``multiple``."""
    units, rest = divmod(total // multiple, parts)
    return [(units + (index < rest)) * multiple for index in range(parts)]


# --- the floor: a bare loop of the channels' send --------------------------------------------

def _floor_child(conn, settings: dict, rendered: dict, sends: int, batch: int, offset: int,
                 go) -> None:
    sys.path.insert(0, common.ROOT)
    from channels import registry
    from channels.base import Outgoing

    senders = {"sms": registry.build("twilio_sms", settings["sms"]),
               "wechat": registry.build("wechat", settings["wechat"])}
    for channel, sender in senders.items():  # warm up: connections, the WeChat token
        sender.send(Outgoing(0, 1, address(channel, 10**7 + offset), rendered[channel], None))
    conn.send("ready")
    go.wait()
    started, cpu_started = time.time(), time.process_time()
    done, failed = 0, 0
    channel_cycle = ("sms", "wechat")
    while done + failed < sends:
        channel = channel_cycle[((done + failed) // batch) % 2]
        sender = senders[channel]
        for _ in range(min(batch, sends - done - failed)):
            i = offset + done + failed
            try:
                sender.send(Outgoing(i, 1, address(channel, i), rendered[channel],
                                     f"http://127.0.0.1:5000/webhooks/{channel}/status/{i}"))
                done += 1
            except Exception:  # noqa: BLE001 - counted, reported
                failed += 1
    conn.send({"started": started, "ended": time.time(), "done": done, "failed": failed,
               "loop_cpu_seconds": time.process_time() - cpu_started})


def floor(app, sends: int, announcement_id: int, first_id: int) -> dict:
    """The bare send loop in two processes, on delivery ids from ``first_id`` (the WeChat
    stand-in, like WeChat, takes a repeated ``client_msg_id`` for the message it already has)."""
    from gateway.delivery import providers
    from messages.render import render

    with app.app_context():
        settings = {"sms": providers.settings_for(app, "sms", "twilio_sms"),
                    "wechat": providers.settings_for(app, "wechat", "wechat")}
        with app.extensions["engine"].connect() as conn:
            from gateway.delivery import lifecycle
            announcement = lifecycle.get(conn, announcement_id)
        rendered = {channel: render(announcement, channel, "zh", providers.render_context())
                    for channel in ("sms", "wechat")}
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pipes, processes = [], []
    share = sends // WORKERS
    for index in range(WORKERS):
        parent, child = context.Pipe()
        process = context.Process(target=_floor_child, args=(
            child, settings, rendered, share, app.config["BATCH_SIZE"],
            first_id + index * share, go))
        process.start()
        pipes.append(parent)
        processes.append(process)
    for pipe in pipes:
        pipe.recv()
    go.set()
    results = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    started = min(r["started"] for r in results)
    ended = max(r["ended"] for r in results)
    return {"sends": sum(r["done"] for r in results), "failed": sum(r["failed"] for r in results),
            "seconds": ended - started, "started": started, "ended": ended, "cpu_seconds": cpu,
            "loop_cpu_seconds": sum(r["loop_cpu_seconds"] for r in results)}


# --- end to end ---------------------------------------------------------------------------

def start_up_cpu(env: dict, log_dir: str) -> float:
    """CPU seconds one worker spends starting, registering and stopping with nothing queued.

    A burst worker, which stops by itself: one stopped by a signal as soon as it registered
    could be forking its scheduler process just then, and leave it running."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle = common.start_workers(1, env, burst=True, queues="sms,wechat", log_dir=log_dir)
    try:
        idle[0].wait(120)
    finally:
        common.stop_processes(idle)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def end_to_end(app, env: dict, announcement_id: int, per_channel: dict[str, int],
               shares: list[tuple[dict[str, range], int]], between, log_dir: str, timeout: float,
               profile_dir: str | None = None) -> dict:
    """Two waiting workers send the shares one round at a time, each round written to the
    ledger, then timed from its queuing until the ledger holds it all as sent. ``between()``
    runs before each round and after the last (a slice of the floor) and returns the CPU its
    own processes used, which is taken off the workers' (both are this process's children)."""
    from gateway.store import ledger

    engine = app.extensions["engine"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = common.start_workers(WORKERS, env, burst=False, queues="sms,wechat", log_dir=log_dir,
                                   profile_dir=profile_dir)
    rounds, counts, settled, target, others_cpu = [], {}, 0, 0, 0.0
    try:
        common.wait_for_workers(app, WORKERS)
        deadline = time.monotonic() + timeout
        for numbers, deliveries in shares:
            others_cpu += between()
            write_ledger(app, announcement_id, per_channel, numbers)
            started, target = time.time(), target + deliveries
            queue_batches(app, announcement_id, numbers)
            while settled < target and time.monotonic() < deadline:
                if all(w.poll() is not None for w in workers):
                    break
                time.sleep(0.05)
                with engine.connect() as conn:
                    counts = ledger.counts(conn, announcement_id)
                settled = sum(n[s] for n in counts.values()
                              for s in ("sent", "delivered", "failed"))
            if settled < target:
                break
            rounds.append({"started": started, "finished": time.time(), "deliveries": deliveries})
        else:
            others_cpu += between()
    finally:
        common.stop_processes(workers)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"rounds": rounds, "complete": len(rounds) == len(shares), "counts": counts,
            "exit_codes": [w.returncode for w in workers],
            "worker_cpu_seconds": (after.ru_utime + after.ru_stime)
            - (before.ru_utime + before.ru_stime) - others_cpu}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--floor-deliveries", type=int, default=20_000,
                        help="sends in the floor's sample (default 20,000)")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help=f"rounds the deliveries are sent in, the floor sampled before, "
                             f"between and after them (default {ROUNDS})")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis-db", type=int, default=common.DEFAULT_REDIS_DB)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--profile-workers", metavar="DIR",
                        help="run the workers under cProfile; print their hot spots (slows them)")
    args = parser.parse_args(argv)
    per_channel = {"sms": args.deliveries - args.deliveries // 2, "wechat": args.deliveries // 2}
    floor_sends = min(args.floor_deliveries, args.deliveries)

    with common.scratch_database(args.database) as database_url, \
            common.scratch_redis(args.redis_db) as redis_url, \
            tempfile.TemporaryDirectory(prefix="tongbao-bench-") as instance, \
            common.FakeProcess("twilio") as twilio, common.FakeProcess("wechat") as wechat:
        config = _channel_config(twilio, wechat)
        app = common.make_app(database_url, redis_url, instance, **config)
        common.load_county(app, 0, profiles=[])
        announcement_id = common.create_announcement(app, channels=["sms", "wechat"],
                                                     severity="moderate")
        common.approve(app, announcement_id)
        versions = [common.database_version(database_url), common.redis_version(redis_url)]

        env = common.gateway_env(database_url, redis_url, instance,
                                 **common.provider_env(twilio, wechat, **RATES))
        start_up = start_up_cpu(env, instance)
        size = app.config["BATCH_SIZE"]
        batches = prepare_ledger(app, announcement_id, per_channel)
        shares = rounds_of(batches, per_channel, size, max(1, min(args.rounds, *batches.values())))
        floor_shares = iter(split(floor_sends, len(shares) + 1, WORKERS))
        slices, fake_cpu = [], {"floor": dict.fromkeys(("twilio", "wechat"), 0.0),
                                "workers": dict.fromkeys(("twilio", "wechat"), 0.0)}
        accepted: dict[str, list[float]] = {"sms": [], "wechat": []}
        spans: list[float] = []  # per round: first → last send the fakes accepted
        fakes = (twilio, wechat)
        base: dict = {}

        def floor_slice() -> float:
            """A slice of the floor between two rounds; the round just run's fake figures."""
            cpu = {fake: fake.cpu_seconds() for fake in fakes}
            if base:  # a round ran since the last slice
                times = {"sms": twilio.times(), "wechat": wechat.times()}
                for channel, got in times.items():
                    accepted[channel] += got
                every = sorted(times["sms"] + times["wechat"])
                spans.append(every[-1] - every[0] if len(every) > 1 else float("nan"))
                for fake in fakes:
                    fake_cpu["workers"][fake.kind] += cpu[fake] - base[fake]
            for fake in fakes:
                fake.reset()
            slices.append(floor(app, next(floor_shares), announcement_id,
                                first_id=20_000_000 + 10_000_000 * len(slices)))
            for fake in fakes:
                fake_cpu["floor"][fake.kind] += fake.cpu_seconds() - cpu[fake]
                fake.reset()
                base[fake] = fake.cpu_seconds()
            return slices[-1]["cpu_seconds"]

        e2e = end_to_end(app, env, announcement_id, per_channel, shares, floor_slice, instance,
                         args.timeout, args.profile_workers)
        if not e2e["complete"]:
            for name in sorted(os.listdir(instance)):
                if name.startswith("worker-"):
                    with open(os.path.join(instance, name), errors="replace") as handle:
                        print(f"--- {name} ---\n{handle.read()[-3000:]}", file=sys.stderr)
            raise SystemExit(f"the ledger did not settle: {e2e['counts']}")
        app.extensions["engine"].dispose()

    seconds = sum(r["finished"] - r["started"] for r in e2e["rounds"])
    e2e_fake_cpu = {kind: cpu_seconds / seconds
                    for kind, cpu_seconds in fake_cpu["workers"].items()}
    bare = {key: sum(part[key] for part in slices)
            for key in ("sends", "failed", "seconds", "cpu_seconds", "loop_cpu_seconds")}
    floor_fake_cpu = {kind: cpu_seconds / bare["seconds"]
                      for kind, cpu_seconds in fake_cpu["floor"].items()}
    slice_rates = [part["sends"] / part["seconds"] for part in slices]
    # Each round against the floor slices on either side of it: how far the machine's speed
    # moved the figure while it ran.
    round_ratios = [r["deliveries"] / (r["finished"] - r["started"])
                    / ((slices[i]["sends"] + slices[i + 1]["sends"])
                       / (slices[i]["seconds"] + slices[i + 1]["seconds"]))
                    for i, r in enumerate(e2e["rounds"])]

    steady = sum(spans)
    sent = {c: n["sent"] + n["delivered"] for c, n in e2e["counts"].items()}
    failed = sum(n["failed"] for n in e2e["counts"].values())
    rate = args.deliveries / seconds
    floor_rate = bare["sends"] / bare["seconds"]
    ratio = rate / floor_rate
    worker_cpu_ms = (e2e["worker_cpu_seconds"] - WORKERS * start_up) / args.deliveries * 1e3
    library_cpu_ms = bare["loop_cpu_seconds"] / bare["sends"] * 1e3
    own_cpu_ms = worker_cpu_ms - library_cpu_ms
    rows = [
        ("database", versions[0], versions[1]),
        ("deliveries", args.deliveries, f"SMS {per_channel['sms']:,} + WeChat "
         f"{per_channel['wechat']:,} in {sum(batches.values()):,} batch jobs"),
        ("ledger: sent", sum(sent.values()), f"failed {failed}; fakes accepted "
         f"SMS {len(accepted['sms']):,}, WeChat {len(accepted['wechat']):,}"),
        ("end to end (s)", seconds, f"{len(e2e['rounds'])} rounds, each queued to 2 waiting "
         "workers → ledger holds it all as sent"),
        ("end to end deliveries/s", rate, ""),
        ("steady state deliveries/s", args.deliveries / steady,
         "first → last send accepted by the fakes, per round"),
        ("worker CPU (s)", e2e["worker_cpu_seconds"],
         f"both workers; start-up and exit {start_up:.2f} s each"),
        ("worker CPU per delivery (ms)", worker_cpu_ms, "start-up and exit left out"),
        ("fake CPU, end to end (share of a core)", "twilio {twilio:.0%}, wechat {wechat:.0%}"
         .format(**e2e_fake_cpu), ""),
        ("floor: bare send loop, 2 processes", bare["sends"], f"failed {bare['failed']}"),
        ("floor deliveries/s", floor_rate, f"{bare['seconds']:.1f} s in {len(slices)} slices, "
         f"before, between and after the rounds: "
         f"{min(slice_rates):,.0f}–{max(slice_rates):,.0f}/s"),
        ("floor CPU per send (ms)", library_cpu_ms,
         "the client library: the timed loops only, both processes"),
        ("fake CPU, floor (share of a core)", "twilio {twilio:.0%}, wechat {wechat:.0%}"
         .format(**floor_fake_cpu), ""),
        ("gateway's own CPU per delivery (ms)", own_cpu_ms,
         f"worker − floor per send; target ≤ {TARGET_OWN_CPU_MS}: "
         f"{common.verdict(own_cpu_ms <= TARGET_OWN_CPU_MS)}"),
        ("ratio to floor", ratio, f"target ≥ {TARGET_RATIO}: {common.verdict(ratio >= TARGET_RATIO)}"),
        ("ratio per round", ", ".join(f"{r:.2f}" for r in round_ratios),
         "each round against the floor slices either side of it"),
    ]
    result = {"script": "delivery_throughput", "database": args.database,
              "deliveries": args.deliveries, "sent": sum(sent.values()), "failed": failed,
              "accepted_by_fakes": {c: len(t) for c, t in accepted.items()},
              "seconds": seconds, "deliveries_per_second": rate,
              "steady_deliveries_per_second": args.deliveries / steady,
              "worker_cpu_seconds": e2e["worker_cpu_seconds"],
              "worker_start_up_cpu_seconds": start_up, "worker_cpu_ms_per_delivery": worker_cpu_ms,
              "floor_cpu_ms_per_send": library_cpu_ms, "own_cpu_ms_per_delivery": own_cpu_ms,
              "floor_sends": bare["sends"], "floor_failed": bare["failed"],
              "floor_seconds": bare["seconds"], "floor_cpu_seconds": bare["cpu_seconds"],
              "floor_per_second": floor_rate, "floor_per_second_slices": slice_rates,
              "rounds": len(e2e["rounds"]), "ratio_per_round": round_ratios,
              "ratio_to_floor": ratio, "fake_cpu_end_to_end": e2e_fake_cpu,
              "fake_cpu_floor": floor_fake_cpu, "machine": common.machine(), "versions": versions}
    common.print_table(f"Delivery throughput: {args.deliveries:,} deliveries, SMS + WeChat, "
                       f"{args.database}", rows, result)
    if args.profile_workers:
        common.print_profiles(args.profile_workers)
    return result


if __name__ == "__main__":
    main()
