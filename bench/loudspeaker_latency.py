"""Loudspeaker latency: approval → each village loudspeaker's ``played`` ack.

    .venv/bin/python -m bench.loudspeaker_latency --devices 2000 --database sqlite
    .venv/bin/python -m bench.loudspeaker_latency --devices 20000 --database sqlite

``--devices`` loudspeakers in the villages of ``audiences.demo.synthetic_county`` (one per
village up to 8,000 villages, several per village beyond), no residents; an ``extreme``
announcement to the prefecture over loudspeakers only. Its speech is made before the clock
starts by ``jobs.prepare_speech``, the job queued when a notice is submitted for approval.

The broker is the bench's own Mosquitto, never the machine's shared one: the deployment's
``docs/mosquitto/mosquitto.conf`` (persistence, ``max_queued_messages 100000``, the size
limits) in a temporary directory, on a free loopback port from 18830, anonymous and without
the TLS listener; killed at the end. Its log is searched for dropped messages.

The devices are *simulated*: ``--simulators`` processes (default one per 5,000 devices, at
least 2), each in a process group of its own (``os.setsid``) with **one** paho client for its
share of the devices, subscribed to every one of its devices' own commands topic
(``tongbao/v1/speakers/<id>/commands``, QoS 1). For each command a simulator does what the
reference controller (``devices.controller``) does before playing: verifies the Ed25519
signature with the gateway's public key, checks expiry and the per-device sequence, and
recognises a repeated command id; then it publishes ``received`` and, after
``--play-seconds`` (default 0: nothing is played), ``played`` on that device's events topic,
QoS 1, each signed with the device's ack key. It counts the ``played`` acks the broker took
(PUBACK). It does **not** download the audio file (there is no web server in this bench)
and it does not publish presence. A real controller is one process and one MQTT connection
per device, on its own hardware; here thousands share a connection, a Python process and the
gateway's two cores.

The gateway: two ``flask --app wsgi worker --queues loudspeaker`` subprocesses (already
registered with rq when the clock starts) send with the MQTT channel (``MQTT_URL``,
``SIGNING_KEY_PATH``, ``LOUDSPEAKER_RATE`` = ``--rate``), and the ack listener
(``gateway.delivery.loudspeakers.listen(app)``) runs in this process. The clock starts before
approval; approval and planning run in this process (``gateway.delivery.jobs.plan_announcement``).
Per device: approval → ``played`` published by the device (simulator's clock, the same
machine), and approval → the ack recorded in the ledger (``confirmed``, its
``updated_at``). The run ends when the ledger holds every loudspeaker delivery confirmed,
or when it has not moved for ``--stall-seconds`` (acks lost on the way: the table then says
how many plays never reached the ledger, and in which status their rows were left). The
table compares the ``played`` acks published, taken by the broker, and in the ledger.

Floor, same run, same broker, same simulators: a bare loop in this process of the same
channel class's ``send_many`` (``MqttLoudspeakerChannel``, built with the gateway's own
settings: sign, publish QoS 1, collect the PUBACKs) over every device in the gateway's
chunks of ``jobs.FLUSH_EVERY``, no database, no queue, no listener; time from the loop's
start to each ``played`` ack.

CPU seconds from approval to the end, metered apart: the gateway (the workers, and this
process: ack listener and planning), the simulated devices (their own process group) and
the broker. On 2 cores, a total near 2 × the wall time means the run was bound by CPU.

``--rate`` defaults to 1e9 (no rate limit, as the gateway must never be the limit);
with the default ``LOUDSPEAKER_RATE`` of 100/s the rate alone spreads 2,000 plays over
20 s. p99 targets (issue 23): ≤ 2 s up to 2,000 devices, ≤ 10 s up to 20,000.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import types
from datetime import timezone

from sqlalchemy import insert, select

from bench import common

#: The deployment's broker configuration, which the bench's own Mosquitto runs, adapted.
DEPLOYMENT_CONF = os.path.join(common.ROOT, "docs", "mosquitto", "mosquitto.conf")
FIRST_PORT = 18830
#: Devices one simulator process (one paho client) answers for, at most.
DEVICES_PER_SIMULATOR = 5000
#: p99 targets by fleet size (issue 23): a county's 2,000 villages, a province's 20,000.
TARGETS_P99 = ((2000, 2.0), (20000, 10.0))
WORKERS = 2
FLOOR_ANNOUNCEMENT = 999_999
VILLAGES_AT_MOST = 8000


def target_p99(devices: int) -> float:
    return next((target for size, target in TARGETS_P99 if devices <= size), TARGETS_P99[-1][1])


# --- the bench's own broker ------------------------------------------------------------

def broker_conf(directory: str, port: int) -> str:
    """docs/mosquitto/mosquitto.conf as the bench runs it: its queue and size limits and its
    persistence, but in ``directory``, on a loopback ``port`` of its own, without the TLS
    listener, and anonymous (the simulated devices have no passwords)."""
    dropped = ("password_file", "acl_file", "listener", "certfile", "keyfile",
               "persistence_location", "allow_anonymous")
    kept = [line for line in open(DEPLOYMENT_CONF, encoding="utf-8").read().splitlines()
            if line.strip() and not line.startswith("#") and line.split()[0] not in dropped]
    if "max_queued_messages 100000" not in kept:
        raise SystemExit(f"{DEPLOYMENT_CONF} no longer sets max_queued_messages 100000")
    return "\n".join([*kept, "allow_anonymous true",
                      f"persistence_location {directory}/",
                      f"log_dest file {directory}/mosquitto.log", "log_type error", "log_type warning",
                      "log_type notice",
                      f"listener {port} 127.0.0.1", ""])


def free_port(first: int) -> int:
    for port in range(first, first + 100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit(f"no free port from {first}")


@contextlib.contextmanager
def own_broker(directory: str):
    """A Mosquitto of the bench's own (never the shared one on 1883), killed at the end;
    yields (its URL, its process, its log file)."""
    port = free_port(FIRST_PORT)
    conf = os.path.join(directory, "mosquitto.conf")
    with open(conf, "w", encoding="utf-8") as out:
        out.write(broker_conf(directory, port))
    process = subprocess.Popen(["mosquitto", "-c", conf], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"mosquitto did not start on port {port} (see {conf})")
            time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}", process, os.path.join(directory, "mosquitto.log")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def dropped_by_broker(log_path: str) -> int:
    """Times the broker logged dropping messages queued for a client (its queue limit)."""
    with open(log_path, encoding="utf-8", errors="replace") as log:
        return sum("dropped" in line for line in log)


# --- simulated controllers ------------------------------------------------------------

def bench_ack_key(device_id: str):
    """A simulated device's ack key, derived from its id: the loader registers its public half,
    the simulator signs with it (a benchmark's stand-in for the key `speakers add` prints)."""
    from channels.loudspeaker import protocol

    seed = hashlib.sha256(f"tongbao-bench-ack-key:{device_id}".encode()).digest()
    return protocol.SigningKey.from_text(base64.b64encode(seed))


def _simulate(pipe, mqtt_url: str, public_pem: str, device_ids: list[str], play_seconds: float,
              name: str) -> None:
    """Child process: one MQTT client answering for ``device_ids`` as their controllers would."""
    # A process group of its own, as the devices are other machines: the gateway's CPU is
    # metered without it, and nothing sent to the bench's group reaches it.
    os.setsid()
    sys.path.insert(0, common.ROOT)
    import threading

    from paho.mqtt.subscribeoptions import SubscribeOptions

    from channels.loudspeaker import protocol
    from channels.loudspeaker.protocol import transport

    address = transport.BrokerAddress.parse(mqtt_url)
    keys = [protocol.load_public_key(public_pem)]
    lock = threading.Lock()
    last_sequence: dict[str, int] = {}
    acks: dict[str, dict] = {}  # command_id -> the last ack, to answer a repeat without playing
    played: dict[str, tuple[str, float, bool]] = {}  # command_id -> (device, time, had audio)
    played_mids: dict[int, str] = {}  # message id of a played ack -> its command id
    taken: list[str] = []  # command ids whose played ack the broker took (PUBACK)
    rejected: list[str] = []
    subscribed = threading.Event()
    pending_subscriptions: set[int] = set()

    client = transport.new_client(address, f"bench-speakers-{name}-{os.getpid()}")
    client.max_inflight_messages_set(1000)

    ack_keys = {device_id: bench_ack_key(device_id) for device_id in device_ids}

    def publish(device_id: str, ack: dict) -> int:
        topic = protocol.events_topic(device_id)
        unsigned = {key: value for key, value in ack.items() if key != "signature"}
        return client.publish(topic, protocol.encode(ack_keys[device_id].sign(topic, unsigned)),
                              qos=protocol.QOS).mid

    def on_publish(client_, userdata, mid, reason_code, properties) -> None:
        with lock:
            command_id = played_mids.pop(mid, None)
            if command_id is not None and not reason_code.is_failure:
                taken.append(command_id)

    def on_message(client_, userdata, message) -> None:
        try:
            where = protocol.split_topic(message.topic)
            device_id = where[0]
            try:
                command = protocol.verify(message.topic, message.payload, keys)
                with lock:
                    earlier = acks.get(command["command_id"])
                if earlier is not None:
                    publish(device_id, {**earlier, "duplicate": True})
                    return
                protocol.check_fresh(command, time.time())
                protocol.check_sequence(command, last_sequence.get(device_id, 0))
            except protocol.CommandRejected as rejection:
                rejected.append(f"{device_id}: {rejection}")
                publish(device_id, protocol.ack(protocol.REJECTED, rejection.command,
                                                reason=rejection.reason, detail=rejection.detail))
                return
            last_sequence[device_id] = command["sequence"]
            publish(device_id, protocol.ack(protocol.RECEIVED, command))
            if command["type"] != "play":
                return
            if play_seconds:
                time.sleep(play_seconds)  # one device plays at a time per simulator: keep it 0
            ack = protocol.ack(protocol.PLAYED, command)
            with lock:  # on_publish may run before publish returns the mid
                played_mids[publish(device_id, ack)] = command["command_id"]
                acks[command["command_id"]] = ack
                played[command["command_id"]] = (device_id, time.time(),
                                                 bool(command.get("audio_url")))
        except Exception as error:  # paho's network thread must not die
            rejected.append(f"{message.topic}: {type(error).__name__}: {error}")

    def on_connect(client_, userdata, flags, reason_code, properties) -> None:
        topics = [protocol.commands_topic(d) for d in device_ids]
        for low in range(0, len(topics), 200):
            result, mid = client_.subscribe([(t, SubscribeOptions(qos=protocol.QOS))
                                             for t in topics[low:low + 200]])
            pending_subscriptions.add(mid)

    def on_subscribe(client_, userdata, mid, reason_codes, properties) -> None:
        pending_subscriptions.discard(mid)
        if not pending_subscriptions:
            subscribed.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.on_publish = on_publish
    transport.start(client, address)
    if not subscribed.wait(30):
        pipe.send({"error": "no SUBACK from the broker"})
        return
    pipe.send({"ready": len(device_ids)})
    while True:
        message = pipe.recv()
        if message == "played":
            with lock:
                pipe.send({"played": dict(played), "rejected": list(rejected),
                           "taken": list(taken)})
        else:
            break
    client.disconnect()
    client.loop_stop()
    pipe.send("stopped")


class Simulators:
    def __init__(self, count: int, device_ids: list[str], public_pem: str, play_seconds: float,
                 mqtt_url: str):
        context = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        for index in range(count):
            parent, child = context.Pipe()
            share = device_ids[index::count]
            self.pipes.append(parent)
            self.processes.append(context.Process(
                target=_simulate, args=(child, mqtt_url, public_pem, share, play_seconds,
                                        str(index)), daemon=True))

    def __enter__(self) -> "Simulators":
        for process in self.processes:
            process.start()
        for pipe in self.pipes:
            answer = pipe.recv()
            if "error" in answer:
                raise SystemExit(f"simulator: {answer['error']}")
        return self

    def __exit__(self, *exc_info) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(Exception):
                pipe.send("stop")
                pipe.recv()
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)

    def played(self) -> tuple[dict[str, tuple[str, float, bool]], list[str]]:
        played, rejected, self.taken = {}, [], set()
        for pipe in self.pipes:
            pipe.send("played")
            answer = pipe.recv()
            played.update(answer["played"])
            rejected += answer["rejected"]
            self.taken.update(answer["taken"])  # command ids whose played ack had its PUBACK
        return played, rejected

    def played_and_acknowledged(self, prefix: str, timeout: float = 10.0):
        """``played()`` once the broker's PUBACK of every played ack under ``prefix`` has
        reached its simulator: the broker can forward an ack to the listener, and the ledger
        hold it, before the simulator has read the PUBACK for it."""
        deadline = time.monotonic() + timeout
        while True:
            played, rejected = self.played()
            mine = {command_id for command_id in played if command_id.startswith(prefix)}
            if mine <= self.taken or time.monotonic() > deadline:
                return played, rejected
            time.sleep(0.05)


# --- the gateway side -------------------------------------------------------------------

def load_villages(app, count: int) -> list[str]:
    """The areas of a synthetic county and ``count`` loudspeakers: one per village up to
    ``VILLAGES_AT_MOST`` (the county's towns hold 9,588), beyond that several per village."""
    from audiences.demo import synthetic_county
    from gateway.store.schema import areas, devices

    county = synthetic_county(count, residents_per_village=-(-count // VILLAGES_AT_MOST))
    villages = list(county.devices)[:count]
    chosen = [(f"{d}-{n // len(villages) + 1}" if n >= len(villages) else d, a,
               t and n < len(villages))
              for n, (d, a, t) in ((n, villages[n % len(villages)]) for n in range(count))]
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": c, "name": n} for c, n in county.areas])
        conn.execute(insert(devices), [{"device_id": d, "area_code": a, "test_device": t,
                                        "ack_public_key": bench_ack_key(d).public_base64()}
                                       for d, a, t in chosen])
    return [d for d, _, _ in chosen]


def floor_run(app, simulators: Simulators, device_ids: list[str], timeout: float) -> dict:
    """The channel's bare send loop to every device, then the played acks."""
    from channels.base import Outgoing
    from channels.loudspeaker.channel import MqttLoudspeakerChannel
    from gateway.delivery import jobs, providers

    with app.app_context():
        settings = providers.settings_for(app, "loudspeaker", "mqtt_loudspeaker")
    channel = MqttLoudspeakerChannel(settings)
    rendered = types.SimpleNamespace(text=common.HEADLINE + common.BODY + common.INSTRUCTION,
                                     data={})
    messages = [Outgoing(delivery_id=number, announcement_id=FLOOR_ANNOUNCEMENT,
                         address=device_id, rendered=rendered)
                for number, device_id in enumerate(device_ids, 1)]
    started = time.time()
    for start in range(0, len(messages), jobs.FLUSH_EVERY):  # the chunks the gateway sends in
        channel.send_many(messages[start:start + jobs.FLUSH_EVERY], lambda: None)
    published = time.time()
    channel.close()
    prefix = f"a{FLOOR_ANNOUNCEMENT}-"
    deadline = time.monotonic() + timeout
    while True:
        played, rejected = simulators.played()
        mine = [t for command_id, (_, t, _) in played.items() if command_id.startswith(prefix)]
        if len(mine) >= len(device_ids) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    latencies = sorted(t - started for t in mine)
    return {"sends": len(device_ids), "played": len(mine), "rejected": rejected,
            "publish_seconds": published - started, **percentiles(latencies)}


def percentiles(ordered: list[float]) -> dict[str, float]:
    if not ordered:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}

    def pct(percent: float) -> float:
        index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": ordered[-1], "min": ordered[0]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--simulators", type=int,
                        help=f"simulator processes (default: one per {DEVICES_PER_SIMULATOR:,} "
                             "devices, at least 2)")
    parser.add_argument("--play-seconds", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=1e9, help="LOUDSPEAKER_RATE")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--profile-workers", metavar="DIR",
                        help="run the workers under cProfile; print their hot spots (slows them)")
    parser.add_argument("--redis-db", type=int, default=common.DEFAULT_REDIS_DB)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--stall-seconds", type=float, default=20,
                        help="stop waiting when the ledger has not moved for this long")
    args = parser.parse_args(argv)
    args.simulators = args.simulators or max(2, -(-args.devices // DEVICES_PER_SIMULATOR))

    from channels.loudspeaker import protocol
    from gateway.delivery import jobs, loudspeakers
    from gateway.store import ledger
    from gateway.store.schema import deliveries

    with common.scratch_database(args.database) as database_url, \
            common.scratch_redis(args.redis_db) as redis_url, \
            tempfile.TemporaryDirectory(prefix="tongbao-bench-") as instance, \
            own_broker(instance) as (mqtt_url, broker, broker_log):
        key_path = os.path.join(instance, "loudspeaker-signing-key.pem")
        public_pem = protocol.SigningKey.load_or_create(key_path).public_pem()
        settings = {"MQTT_URL": mqtt_url, "SIGNING_KEY_PATH": key_path,
                    "LOUDSPEAKER_RATE": args.rate}
        app = common.make_app(database_url, redis_url, instance, **settings)
        device_ids = load_villages(app, args.devices)
        announcement_id = common.create_announcement(app, channels=["loudspeaker"],
                                                     severity="extreme")
        versions = [common.database_version(database_url), common.redis_version(redis_url)]
        # What the job queued at submission does while the notice awaits approval.
        speech_started = time.monotonic()
        with app.app_context():
            jobs.prepare_speech(announcement_id)
        speech_seconds = time.monotonic() - speech_started
        env = common.gateway_env(database_url, redis_url, instance, **settings)

        with Simulators(args.simulators, device_ids, public_pem, args.play_seconds,
                        mqtt_url) as simulators:
            floor = floor_run(app, simulators, device_ids, args.timeout)
            workers = common.start_workers(WORKERS, env, burst=False, queues="loudspeaker",
                                           log_dir=instance, profile_dir=args.profile_workers)
            listening = loudspeakers.listen(app, client_id=f"bench-acks-{os.getpid()}")
            try:
                common.wait_for_workers(app, WORKERS)
                _, approver = common.users(app)
                meter = common.CpuMeter({
                    "gateway workers": [worker.pid for worker in workers],
                    "gateway ack listener, planning (bench process)": [os.getpid()],
                    "devices (own process group)": [p.pid for p in simulators.processes],
                    "broker (own)": [broker.pid]})
                meter.start()
                started = time.time()
                common.approve(app, announcement_id, approver)
                with app.app_context():
                    totals = jobs.plan_announcement(announcement_id)
                planned_at = time.time()
                finished, counts, stalled = None, {}, False
                deadline = time.monotonic() + args.timeout
                last_change, last_settled = time.monotonic(), -1
                while time.monotonic() < deadline:
                    with app.extensions["engine"].connect() as conn:
                        counts = ledger.counts(conn, announcement_id)
                    speakers = counts.get("loudspeaker", {})
                    settled = speakers.get("confirmed", 0) + speakers.get("failed", 0)
                    if settled >= totals.get("loudspeaker", 0):
                        finished = time.time()
                        break
                    if settled != last_settled:
                        last_change, last_settled = time.monotonic(), settled
                    elif time.monotonic() - last_change > args.stall_seconds:
                        stalled = True  # nothing moves any more: report what arrived
                        break
                    time.sleep(0.1)
                meter.stop()
                played, rejected = simulators.played_and_acknowledged(f"a{announcement_id}-")
                groups_of_their_own = all(os.getpgid(p.pid) == p.pid for p in simulators.processes)
            finally:
                listening.stop(end_session=True)  # its id is never used again
                common.stop_processes(workers)
            with app.extensions["engine"].connect() as conn:
                confirmed = conn.execute(
                    select(deliveries.c.updated_at)
                    .where(deliveries.c.announcement_id == announcement_id,
                           deliveries.c.channel == "loudspeaker",
                           deliveries.c.status == "confirmed")).scalars().all()
        app.extensions["engine"].dispose()
    ended = finished if finished is not None else time.time()

    prefix = f"a{announcement_id}-"
    mine = {c: v for c, v in played.items() if c.startswith(prefix)}
    device_latency = percentiles(sorted(t - started for _, t, _ in mine.values()))
    ledger_latency = percentiles(sorted(
        (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp() - started
        for stamp in confirmed))
    with_audio = sum(1 for _, _, audio in mine.values() if audio)
    taken = sum(1 for command_id in simulators.taken if command_id.startswith(prefix))
    dropped = dropped_by_broker(broker_log) if os.path.exists(broker_log) else 0
    gateway_cpu = sum(seconds for name, seconds in meter.used.items() if name.startswith("gateway"))
    target = target_p99(len(device_ids))
    # The last play needs at least the CPU the send path and the devices used, shared by the
    # machine's cores (the ack listener's recording may lag behind the plays, so not counted).
    send_path_cpu = sum(seconds for name, seconds in meter.used.items()
                        if name in ("gateway workers", "devices (own process group)", "broker (own)"))
    cpu_floor = send_path_cpu / (os.cpu_count() or 1)
    ratio = device_latency["p99"] / floor["p99"]
    speakers = counts["loudspeaker"]
    missing = totals.get("loudspeaker", 0) - speakers["confirmed"] - speakers["failed"]
    # A play whose ack never reached the ledger counts as not within any target.
    worst = ledger_latency["max"] if not missing else float("inf")
    rows = [
        ("database", versions[0], f"{versions[1]}; the bench's own Mosquitto {mqtt_url} "
         f"(docs/mosquitto/mosquitto.conf adapted); LOUDSPEAKER_RATE {args.rate:g}"),
        ("devices (loudspeakers)", len(device_ids),
         f"simulated: {args.simulators} processes in their own process group, one MQTT client "
         f"each, {-(-len(device_ids) // args.simulators):,} devices per client"),
        ("speech made before approval (s)", speech_seconds,
         "jobs.prepare_speech, as queued at submission; not in any figure below"),
        ("plays planned / confirmed / failed", f"{totals.get('loudspeaker', 0):,} / "
         f"{speakers['confirmed']:,} / {speakers['failed']:,}",
         f"commands with audio {with_audio:,}; rejections {len(rejected)}"),
        ("played acks: published / taken by the broker / in the ledger",
         f"{len(mine):,} / {taken:,} / {speakers['confirmed']:,}",
         f"broker log lines on dropped messages: {dropped}"),
        ("approval → planned and queued (s)", planned_at - started, "in this process"),
        ("approval → played: p50 (s)", device_latency["p50"], "published by the device"),
        ("approval → played: p99 (s)", device_latency["p99"],
         f"target ≤ {target:g} s: {common.verdict(device_latency['p99'] <= target)}"),
        ("approval → played: max (s)", device_latency["max"], ""),
        ("approval → played: first (s)", device_latency["min"], ""),
        ("approval → ack in ledger: p50 / p99 / max (s)",
         f"{ledger_latency['p50']:.3f} / {ledger_latency['p99']:.3f} / {ledger_latency['max']:.3f}",
         "confirmed rows' updated_at" + (f"; of the {speakers['confirmed']:,} confirmed only" if missing else "")),
        ("approval → ledger all confirmed (s)", finished - started if finished else "never",
         "" if finished else f"{missing:,} plays never confirmed in the ledger (their rows: "
         + ", ".join(f"{s} {n:,}" for s, n in speakers.items() if n and s not in ("confirmed", "failed"))
         + f"); stopped waiting {'when nothing moved for ' + format(args.stall_seconds, 'g') + ' s' if stalled else 'at the timeout'}, "
         f"{ended - started:.1f} s after approval"),
        ("floor: bare send loop → played: p50 / p99 / max (s)",
         f"{floor['p50']:.3f} / {floor['p99']:.3f} / {floor['max']:.3f}",
         f"{floor['played']:,} of {floor['sends']:,} played; loop published in "
         f"{floor['publish_seconds']:.3f} s"),
        ("ratio to floor (p99)", ratio, "same devices, same broker, same simulators"),
        ("gateway CPU from approval to the end (s)", gateway_cpu,
         "workers + ack listener + planning; the simulated devices and the broker not included"),
        ("CPU used from approval to the end (s)", sum(meter.used.values()), meter.summary()),
        ("CPU floor of the last play (s)", cpu_floor,
         f"(workers + devices + broker) {send_path_cpu:.2f} CPU-s / {os.cpu_count()} CPUs, "
         "even on an idle machine"),
    ]
    result = {"script": "loudspeaker_latency", "database": args.database,
              "devices": len(device_ids), "planned": totals.get("loudspeaker", 0),
              "confirmed": speakers["confirmed"], "failed": speakers["failed"],
              "played_acks": len(mine), "played_acks_taken": taken, "broker_dropped": dropped,
              "with_audio": with_audio, "rejected": rejected, "speech_seconds": speech_seconds,
              "target_p99": target, "gateway_cpu_seconds": gateway_cpu, "broker": mqtt_url,
              "cpu_floor_seconds": cpu_floor,
              "simulators_in_own_process_groups": groups_of_their_own,
              "simulators": args.simulators, "rate": args.rate,
              "plan_seconds": planned_at - started,
              "seconds": (finished - started) if finished else None, "never_confirmed": missing,
              "ledger_worst": worst, "by_status": speakers,
              "p50": device_latency["p50"], "p99": device_latency["p99"],
              "max": device_latency["max"], "ledger": ledger_latency, "floor": floor,
              "ratio_to_floor": ratio, "cpu_seconds": meter.used, "cpu_wall": meter.wall,
              "machine": common.machine(), "versions": versions}
    common.print_table(f"Loudspeaker latency: {len(device_ids):,} devices, {args.database}",
                       rows, result)
    if args.profile_workers:
        common.print_profiles(args.profile_workers)
    return result


if __name__ == "__main__":
    main()
