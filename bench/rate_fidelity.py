"""Rate fidelity: SMS configured at 50 messages/s, 2,000 messages, two workers.

    .venv/bin/python -m bench.rate_fidelity --messages 2000 --rate 50 --database sqlite

A county of ``--messages`` residents, every one with a phone number, gets an ``extreme``
announcement over SMS alone (so each resident is exactly one SMS). Two long-running
``flask --app wsgi worker --queues sms`` subprocesses are started and registered with rq
before the clock starts; then the announcement is approved and planned in this process
(``gateway.delivery.jobs.plan_announcement``), and the clock stops when the ledger holds every
SMS as sent. The fake Twilio server (its own process) records the moment it accepts
each message.

Figures: the most messages accepted in any one-second sliding window (exact, over every
window), the achieved rate ((n - 1) / (last - first accepted)) against the configured
one, and the preview's estimate (``gateway.delivery.preview.preview(...)["seconds_to_complete"]``)
against the actual time from approval to the ledger settled. The floor here is the
configured rate itself.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time


from bench import common

WORKERS = 2


def residents_with_phones(count: int):
    from audiences.demo import synthetic_county

    stream = (p for p in synthetic_county(count * 2).residents() if p.phone)
    return list(itertools.islice(stream, count))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis-db", type=int, default=common.DEFAULT_REDIS_DB)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)

    from gateway.delivery import lifecycle
    from gateway.delivery import jobs
    from gateway.store import ledger
    from gateway.delivery.preview import preview

    with common.scratch_database(args.database) as database_url, \
            common.scratch_redis(args.redis_db) as redis_url, \
            tempfile.TemporaryDirectory(prefix="tongbao-bench-") as instance, \
            common.FakeProcess("twilio") as twilio:
        rates = {"SMS_RATE": args.rate}
        provider = common.provider_env(twilio, None, **rates)
        app = common.make_app(database_url, redis_url, instance,
                              **{k: (float(v) if k == "SMS_RATE" else v) for k, v in provider.items()})
        common.load_county(app, 0, profiles=residents_with_phones(args.messages))
        announcement_id = common.create_announcement(app, channels=["sms"], severity="extreme")
        with app.app_context(), app.extensions["engine"].connect() as conn:
            estimate = preview(conn, lifecycle.get(conn, announcement_id))
        estimated = estimate["seconds_to_complete"]["overall"]
        versions = [common.database_version(database_url), common.redis_version(redis_url)]

        env = common.gateway_env(database_url, redis_url, instance, **provider)
        workers = common.start_workers(WORKERS, env, burst=False, queues="sms", log_dir=instance)
        try:
            common.wait_for_workers(app, WORKERS)
            _, approver = common.users(app)
            started = time.time()
            common.approve(app, announcement_id, approver)
            with app.app_context():
                totals = jobs.plan_announcement(announcement_id)
            finished, counts = None, {}
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                with app.extensions["engine"].connect() as conn:
                    counts = ledger.counts(conn, announcement_id)
                settled = sum(n[s] for n in counts.values() for s in ("sent", "delivered", "failed"))
                if settled >= sum(totals.values()):
                    finished = time.time()
                    break
                time.sleep(0.05)
        finally:
            common.stop_processes(workers)
        times = sorted(twilio.times())
        app.extensions["engine"].dispose()
    if finished is None:
        raise SystemExit(f"the ledger did not settle: {counts}")

    planned = totals.get("sms", 0)
    actual = finished - started
    window = common.max_in_window(times)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    achieved = (len(times) - 1) / span
    rate_error = achieved / args.rate - 1
    estimate_error = estimated / actual - 1
    sent = counts["sms"]["sent"] + counts["sms"]["delivered"]
    gaps = sorted(b - a for a, b in zip(times, times[1:])) or [0.0]
    rows = [
        ("database", versions[0], versions[1]),
        ("messages planned / sent", f"{planned:,} / {sent:,}", f"fake Twilio accepted {len(times):,}"),
        ("configured rate (/s)", args.rate, "SMS_RATE; the floor for this benchmark"),
        ("max in any 1 s window", window,
         f"cap {args.rate:g}: {common.verdict(window <= args.rate)}"),
        ("gap between sends: min / median (ms)",
         f"{gaps[0] * 1e3:.1f} / {statistics.median(gaps) * 1e3:.1f}",
         f"slots are {1e3 / args.rate:g} ms apart; a short gap is jitter at the provider"),
        ("achieved rate (/s)", achieved, f"(n-1)/(last-first) over {span:.2f} s; "
         f"{rate_error:+.2%} vs configured, target ±5%: {common.verdict(abs(rate_error) <= 0.05)}"),
        ("ratio to floor (achieved / configured)", achieved / args.rate, ""),
        ("preview estimate (s)", estimated, "seconds_to_complete.overall"),
        ("actual: approval → ledger settled (s)", actual, "plan in-process, 2 workers already up"),
        ("first → last send (s)", span, f"approval → first send {times[0] - started:.2f} s, "
         f"last send → ledger settled {finished - times[-1]:.2f} s"),
        ("estimate vs actual", f"{estimate_error:+.2%}",
         f"target ±10%: {common.verdict(abs(estimate_error) <= 0.10)}"),
    ]
    result = {"script": "rate_fidelity", "database": args.database, "messages": args.messages,
              "planned": planned, "sent": sent, "accepted": len(times), "rate": args.rate,
              "max_in_window": window, "min_gap_seconds": gaps[0], "achieved_rate": achieved, "rate_error": rate_error,
              "estimate_seconds": estimated, "actual_seconds": actual, "send_span_seconds": span,
              "first_send_after_seconds": times[0] - started,
              "estimate_error": estimate_error, "machine": common.machine(), "versions": versions}
    common.print_table(f"Rate fidelity: {args.messages:,} SMS at {args.rate:g}/s, {WORKERS} workers, "
                       f"{args.database}", rows, result)
    return result


if __name__ == "__main__":
    main()
