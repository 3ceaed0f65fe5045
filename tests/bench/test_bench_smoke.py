"""Each benchmark script at a tiny size, so the scripts cannot rot.

They run as their documented commands (``python -m bench.<name> ...``) against the
machine's Redis and PostgreSQL. The scripts flush their Redis database, so they use
database 7, outside the test runs' 8-15 (``tests/conftest.py``), one script at a time
across runs side by side (a lock file). Only the printed
table and its figures are checked (present, positive, counts as the size implies);
never a timing.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import subprocess
import sys

import pytest

from gateway.delivery.ratelimit import effective_rate

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REDIS_DB = "7"
LOCK_PATH = "/tmp/tongbao-bench-smoke-redis-7.lock"


def run(module: str, *args: str, timeout: float = 300) -> tuple[str, dict]:
    with open(LOCK_PATH, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        completed = subprocess.run([sys.executable, "-m", f"bench.{module}", *args,
                                    "--redis-db", REDIS_DB],
                                   cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, completed.stdout
    assert "| figure" in completed.stdout and "ratio to floor" in completed.stdout
    return completed.stdout, json.loads(lines[0][len("RESULT "):])


def positive(result: dict, *names: str) -> None:
    for name in names:
        assert isinstance(result[name], (int, float)) and result[name] > 0, (name, result[name])


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_plan_and_queue(database):
    _, result = run("plan_and_queue", "--residents", "300", "--database", database,
                    "--roster", "both")
    for roster, figures in (("monolingual", result), ("multilingual", result["multilingual"])):
        assert figures["roster"] == roster and figures["residents"] == 300
        assert figures["deliveries"] == figures["planned"] == sum(figures["per_channel"].values())
        # the floor inserts the very rows the plan wrote
        assert figures["floor_rows"] == figures["deliveries"]
        assert set(figures["per_channel"]) == {"sms", "voice", "wechat", "loudspeaker"}
        # extreme severity: an SMS for everyone with a phone, at most one of each channel per resident
        assert 250 <= figures["per_channel"]["sms"] <= 300
        assert figures["per_channel"]["voice"] <= 300 and figures["per_channel"]["wechat"] <= 300
        assert figures["per_channel"]["loudspeaker"] == 41  # one per village of the demo county
        assert figures["jobs_queued"] == figures["jobs_expected"] > 0
        positive(figures, "seconds", "deliveries_per_second", "ru_maxrss_bytes",
                 "sampled_peak_rss_bytes", "floor_db_seconds", "floor_redis_seconds",
                 "floor_seconds", "ratio_to_floor", "floor_db_with_commits_seconds",
                 "ratio_to_tightest_floor", "resume_redo_seconds", "peak_rss_bytes")
        # judged on the plan's own memory: the sampled peak when ru_maxrss is the bench's
        assert figures["peak_rss_bytes"] >= figures["sampled_peak_rss_bytes"]
        if not figures["ru_maxrss_inherited"]:
            assert figures["peak_rss_bytes"] >= figures["ru_maxrss_bytes"]
    if database == "postgresql":  # the server's CPU, ended backends included
        positive(result, "server_cpu_seconds")
        # the floor's few hundred rows by COPY can take less than one clock tick (10 ms)
        # of the server's CPU, so zero is a true reading at this size
        assert isinstance(result["floor_server_cpu_seconds"], float)
        assert result["floor_server_cpu_seconds"] >= 0
    assert set(result["spoken_languages"]) <= {"zh", "en"}
    assert {"zh", "yue", "za"} <= set(result["multilingual"]["spoken_languages"])
    # spoken languages change no channel: the same deliveries either way
    assert result["multilingual"]["per_channel"] == result["per_channel"]
    positive(result, "multilingual_ratio_vs_monolingual")


def test_delivery_throughput():
    _, result = run("delivery_throughput", "--deliveries", "900", "--floor-deliveries", "100",
                    "--rounds", "3")
    assert result["deliveries"] == result["sent"] == 900
    assert result["failed"] == 0
    assert result["accepted_by_fakes"] == {"sms": 450, "wechat": 450}  # 3 batches each
    assert result["rounds"] == 3 and len(result["ratio_per_round"]) == 3
    assert len(result["floor_per_second_slices"]) == 4  # before, between and after the rounds
    assert result["floor_sends"] == 100 and result["floor_failed"] == 0
    positive(result, "seconds", "deliveries_per_second", "floor_per_second", "ratio_to_floor",
             "worker_cpu_seconds", "worker_start_up_cpu_seconds", "floor_cpu_ms_per_send")
    # at this size start-up dwarfs the sends: what is left of it may fall either side of 0
    assert math.isfinite(result["worker_cpu_ms_per_delivery"])
    assert math.isfinite(result["own_cpu_ms_per_delivery"])


def test_rate_fidelity():
    _, result = run("rate_fidelity", "--messages", "60", "--rate", "50")
    assert result["planned"] == result["sent"] == result["accepted"] == 60
    # The preview estimates at the rate the limiter lets through: 50 per 1.03 s.
    assert result["estimate_seconds"] == pytest.approx(round(60 / effective_rate(50), 2))
    assert 1 <= result["max_in_window"] <= 60
    positive(result, "achieved_rate", "actual_seconds", "send_span_seconds")


def test_console_load():
    _, result = run("console_load", "--deliveries", "3000", "--notices", "2", "--clients", "5",
                    "--requests", "4", "--page-requests", "2", "--paced-requests", "2",
                    "--interval", "0.2", "--poll-seconds", "0.2")
    assert result["deliveries"] == 3000 and result["notices"] == 2
    assert result["first_notice_deliveries"] == 1500
    # the running counts the bench writes with the ledger are what the status answer reads
    assert result["counts_match"]
    assert result["reached_residents"] == result["reached_expected"] > 0
    # each notice's first status and progress, timed while nothing is counted yet
    assert {name: len(took) for name, took in result["first_answers_seconds"].items()} == {
        "status": 2, "console progress.json": 2}
    assert set(result["server_cpu_per_request_seconds"]) == {
        "floor (401)", "status", "watchers (page once, then progress.json)"}
    positive(result["server_cpu_per_request_seconds"], "status")
    assert result["requests"] == 20 and result["errors"] == 0
    assert result["floor"]["requests"] == 20 and result["floor"]["errors"] == 0
    positive(result, "p50", "p99", "max", "per_second", "ratio_to_floor")
    assert set(result["pages"]) == {"console page", "console progress.json", "announcement list"}
    for page in result["pages"].values():
        assert page["requests"] == 10 and page["errors"] == 0  # logged in: 200, no redirect
        positive(page, "p50", "p99", "max", "per_second")
    assert set(result["paced"]) == {"floor (401)", "status", "console page", "console progress.json"}
    opened_once = {"console page": 5}  # a watcher opens the page, then polls its progress
    for name, paced in result["paced"].items():
        assert paced["requests"] == opened_once.get(name, 10) and paced["errors"] == 0
        positive(paced, "p50", "p99", "max")
        # paced: 5 clients, requests 0.2 s apart, starting within 0.2 s of each other
        assert paced["seconds"] >= 0.2


def test_loudspeaker_latency():
    _, result = run("loudspeaker_latency", "--devices", "20")
    assert result["devices"] == result["planned"] == 20
    assert result["confirmed"] == result["played_acks"] == result["played_acks_taken"] == 20
    assert result["failed"] == 0 and result["rejected"] == [] and result["broker_dropped"] == 0
    assert result["floor"]["played"] == result["floor"]["sends"] == 20
    positive(result, "p50", "p99", "max", "seconds", "ratio_to_floor", "speech_seconds",
             "gateway_cpu_seconds")
    # Its own broker (never the shared one on 1883); the devices in process groups of their own.
    assert result["broker"].startswith("mqtt://127.0.0.1:188") and not result["broker"].endswith(":1883")
    assert result["simulators_in_own_process_groups"] is True
    assert set(result["cpu_seconds"]) == {"gateway workers", "devices (own process group)",
                                          "broker (own)",
                                          "gateway ack listener, planning (bench process)"}
    assert sum(result["cpu_seconds"].values()) > 0 and result["cpu_wall"] > 0
    assert result["p50"] <= result["p99"] <= result["max"]


def test_reach_curve(tmp_path):
    plot = tmp_path / "reach.png"
    stdout, result = run("reach_curve", "--residents", "60", "--full-residents", "3000",
                         "--call-seconds", "5", "--measure-seconds", "12", "--plot", str(plot))
    assert result["actual_residents"] == 60
    assert 0 < result["actual_reached"] <= 60
    assert result["callback_failures"] == 0
    assert set(result["actual_deliveries"]) == {"sms", "voice", "wechat"}
    # calls hold one of 10 lines for 5 s each: some end within the run, never more than the lines allow
    calls = result["calls_completed"]
    assert 0 < calls["measured"] <= min(result["actual_deliveries"]["voice"],
                                        10 * (int(result["actual_seconds"] / 5) + 1))
    # the floor is the preview's own forecast of this notice
    forecast = result["reach_forecast"]
    assert forecast["concurrent_calls"] == 10 and forecast["speech_seconds_measured"]
    assert forecast["seconds_to_90_percent"] == pytest.approx(
        result["predicted_t90_seconds"]["overall"], abs=0.1)
    assert sum(result["full_deliveries"][c] for c in ("sms", "voice", "wechat")) > 3000
    assert result["full_deliveries"]["loudspeaker"] == 41  # one per village of the demo county
    assert "current policy" in result["t90_minutes"]
    # the tables: shares in [0, 1], never falling as time passes
    assert "| minute |" in stdout and len(result["table"]) >= 10
    assert "| second | measured | predicted |" in stdout and len(result["run_table"]) == 10
    for column in ("measured", "predicted"):
        for key in (0, 1):
            shares = [row[column][key] for row in result["run_table"]]
            assert all(0 <= s <= 1 for s in shares) and shares == sorted(shares)
    for mix in result["t90_minutes"]:
        shares = [row["mixes"][mix][0] for row in result["table"]]
        assert all(0 <= s <= 1 for s in shares) and shares == sorted(shares)
    assert result["run_table"][-1]["measured"][0] >= 0.9  # by the end nearly everyone is reached
    positive(result, "actual_seconds", "ratio_to_floor")
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_the_copy_floor_sends_every_row_once_split_where_the_plan_committed(tmp_path):
    """The PostgreSQL floor's text is made before its clock starts: every dumped row once, in
    order, escaped as COPY reads it, one transaction per commit the plan made."""
    import marshal

    from bench.plan_and_queue import _as_copy_text, _parts

    rows = [(9, "sms", recipient, f"+86138{recipient:08d}", "zh", 0, "queued", 0, "t")
            for recipient in range(1, 8)]
    rows[3] = (9, "wechat", 4, "tab\there\\", "zh", 0, "queued", 0, "t")
    path = tmp_path / "rows.marshal"
    with open(path, "wb") as out:
        marshal.dump(rows[:4], out)
        marshal.dump(rows[4:], out)
    transactions = _as_copy_text(_parts(str(path), [2, 5]))
    lines = ["".join(pieces).splitlines() for pieces in transactions]
    assert [len(part) for part in lines] == [2, 3, 2]
    assert lines[1][1] == "9\twechat\t4\ttab\\there\\\\\tzh\t0\tqueued\t0\tt"
    assert [int(line.split("\t")[2]) for part in lines for line in part] == list(range(1, 8))
