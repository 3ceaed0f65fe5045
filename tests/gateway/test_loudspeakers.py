"""Loudspeakers from approval to the village and back: the gateway side, end to end.

Real Mosquitto on 127.0.0.1:1883, reference controllers as separate processes
(so one can be killed without a goodbye), real rq jobs, and the gateway's ack
listener from ``gateway.delivery.loudspeakers.listen``. The app is served over HTTP so
controllers can download the synthesized audio. Villages are this test's own
(no county devices in them) and device ids are unique per test, so parallel
runs on the shared broker do not collide.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from werkzeug.serving import make_server

from channels.loudspeaker import protocol
from channels.loudspeaker.protocol import transport
from devices.controller.players import read_sink
from gateway.delivery import loudspeakers, queues
from gateway.store import roster
from gateway.store.schema import areas, deliveries, devices
from tests.conftest import run_jobs
from tests.gateway.test_fanout import publish

pytestmark = pytest.mark.integration

MOSQUITTO_URL = "mqtt://127.0.0.1:1883"
WAIT = 30  # seconds for something that should happen (a play includes downloading the audio)
EAST, WEST, SOUTH = "450702100211", "450702100212", "450702100213"
VILLAGES = [(EAST, "东山村"), (WEST, "西岭村"), (SOUTH, "南塘村")]


@pytest.fixture
def app(make_app, database_url, tmp_path):
    """The gateway on the real broker, served on a free loopback port."""
    app = make_app(database_url, MQTT_URL=MOSQUITTO_URL,
                   SIGNING_KEY_PATH=str(tmp_path / "gateway.pem"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.config["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app
    server.shutdown()
    with app.app_context():
        for sender in app.extensions.get("senders", {}).values():
            sender.close()


@pytest.fixture
def listening(app, county):
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": code, "name": name} for code, name in VILLAGES])
    listening = loudspeakers.listen(app, client_id=f"tongbao-acks-{uuid.uuid4().hex[:12]}")
    yield listening
    listening.stop(end_session=True)  # its id is never used again


class Speakers:
    """Reference controllers, one process per device, each 'playing' into its own sink."""

    def __init__(self, app, tmp_path):
        self.app = app
        self.tmp_path = tmp_path
        self.public_key = tmp_path / "gateway.pub"
        self.public_key.write_text(
            protocol.SigningKey.load_or_create(app.config["SIGNING_KEY_PATH"]).public_pem())
        self.processes: dict[str, subprocess.Popen] = {}

    def register(self, village, *, test_device=False) -> str:
        device_id = f"spk-{uuid.uuid4().hex[:12]}"
        with self.app.extensions["engine"].begin() as conn:
            roster.add_device(conn, device_id, village, test_device=test_device, actor="test")
        return device_id

    def start(self, village, *, test_device=False, play_seconds=0.0) -> str:
        """A registered device with its controller running and shown online."""
        device_id = self.register(village, test_device=test_device)
        self.processes[device_id] = subprocess.Popen(
            [sys.executable, "-m", "devices.controller", "--device-id", device_id,
             "--mqtt-url", MOSQUITTO_URL, "--public-key", str(self.public_key),
             "--state-dir", str(self.tmp_path / device_id / "state"),
             "--sink-dir", self.sink(device_id), "--sink-seconds", str(play_seconds)],
            cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: device(self.app, device_id).online is True, f"{device_id} online")
        return device_id

    def kill(self, device_id):
        """Gone without a DISCONNECT, as after a power cut: the broker sends the last will."""
        self.processes[device_id].send_signal(signal.SIGKILL)
        self.processes[device_id].wait()

    def sink(self, device_id) -> str:
        return str(self.tmp_path / device_id / "sink")

    def heard(self, device_id, what="finished") -> list[dict]:
        return [record for record in read_sink(self.sink(device_id)) if record["what"] == what]

    def close(self):
        for device_id, process in self.processes.items():
            process.kill()
            process.wait()
            clear_presence(device_id)


@pytest.fixture
def speakers(app, listening, tmp_path):
    speakers = Speakers(app, tmp_path)
    yield speakers
    speakers.close()


def clear_presence(device_id):
    """Remove the retained status a test device left on the shared broker."""
    with mqtt_client(f"clear-{device_id}") as client:
        client.publish(protocol.status_topic(device_id), b"", qos=1, retain=True).wait_for_publish(WAIT)


@contextlib.contextmanager
def mqtt_client(client_id):
    """A plain connected client, as a device or an eavesdropper would be."""
    address = transport.BrokerAddress.parse(MOSQUITTO_URL)
    client = transport.new_client(address, client_id)
    transport.start(client, address)
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def device_says(*acks):
    """Publish ``(device_id, ack)`` pairs from one client, so they arrive in this order."""
    with mqtt_client(f"raw-{uuid.uuid4().hex[:12]}") as client:
        for device_id, ack in acks:
            payload = json.dumps({"v": 1, "sequence": 1, "at": int(time.time()), **ack})
            client.publish(protocol.events_topic(device_id), payload, qos=1).wait_for_publish(WAIT)


def wait_for(predicate, what):
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def device(app, device_id):
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(devices).where(devices.c.device_id == device_id)).first()


def speaker_deliveries(app, announcement_id) -> dict[str, object]:
    """Device id -> its delivery row."""
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(deliveries).where(deliveries.c.announcement_id == announcement_id,
                                                     deliveries.c.channel == "loudspeaker")).all()
    return {row.address: row for row in rows}


def statuses(app, announcement_id) -> dict[str, str]:
    return {address: row.status for address, row in speaker_deliveries(app, announcement_id).items()}


def synthesized(app) -> set[str]:
    """SHA-256 of every speech file the gateway made."""
    folder = app.config["MEDIA_DIR"]
    return {hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in os.listdir(folder) if name.endswith(".wav")}


def coverage(app, announcement_id):
    with app.extensions["engine"].connect() as conn:
        return loudspeakers.coverage(conn, announcement_id)


# --- the "done when" --------------------------------------------------

def test_two_of_three_villages_hear_the_notice_and_show_confirmed(app, api, speakers):
    east, west, south = (speakers.start(village) for village, _ in VILLAGES)
    announcement_id = publish(api, areas=[EAST, WEST], channels=["loudspeaker"])
    run_jobs(app)
    wait_for(lambda: statuses(app, announcement_id) == {east: "confirmed", west: "confirmed"},
             "both villages confirmed")
    for played_by in (east, west):
        [record] = speakers.heard(played_by)
        assert record["announcement_id"] == announcement_id
        assert "暴雨红色预警" in record["text"] and record["drill"] is False
        assert record["audio_sha256"] in synthesized(app)  # downloaded and checked by the device
    assert read_sink(speakers.sink(south)) == []
    assert coverage(app, announcement_id) == [
        {"area_code": EAST, "name": "东山村", "devices": 1, "played": 1, "offline": [], "reached": True},
        {"area_code": WEST, "name": "西岭村", "devices": 1, "played": 1, "offline": [], "reached": True}]


def test_a_drill_plays_only_on_the_test_device(app, api, speakers):
    tester = speakers.start(EAST, test_device=True)
    ordinary = speakers.start(EAST)
    announcement_id = publish(api, status="Exercise", areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    wait_for(lambda: statuses(app, announcement_id) == {tester: "confirmed"}, "the drill played")
    [record] = speakers.heard(tester)
    assert record["drill"] is True and "演练" in record["text"]
    assert read_sink(speakers.sink(ordinary)) == []


def test_a_killed_controller_shows_offline_and_its_village_unreached(app, api, speakers):
    east, west = speakers.start(EAST), speakers.start(WEST)
    speakers.kill(west)
    wait_for(lambda: device(app, west).online is False, "the last will")
    assert device(app, west).last_seen is not None
    announcement_id = publish(api, areas=[EAST, WEST], channels=["loudspeaker"])
    run_jobs(app)
    wait_for(lambda: statuses(app, announcement_id)[east] == "confirmed", "the online village")
    assert statuses(app, announcement_id)[west] == "sent"
    assert [(v["area_code"], v["played"], v["offline"], v["reached"])
            for v in coverage(app, announcement_id)] == [(EAST, 1, [], True), (WEST, 0, [west], False)]


def test_cancel_stops_a_device_holding_the_command(app, api, speakers):
    holder = speakers.start(EAST, play_seconds=600)
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    wait_for(lambda: speakers.heard(holder, "started"), "the play to start")
    cancelled = api("author").post(f"/api/v1/announcements/{announcement_id}/cancel",
                                   json={"correction": "此预警发布有误，请忽略。"})
    assert cancelled.status_code == 200, cancelled.json
    run_jobs(app)  # the cancel queued the stop
    wait_for(lambda: speakers.heard(holder, "interrupted"), "the play to stop")
    wait_for(lambda: "stopped on the device" in (speaker_deliveries(app, announcement_id)[holder]
                                                 .last_error or ""), "the stopped ack")
    [interrupted] = speakers.heard(holder, "interrupted")
    assert interrupted["announcement_id"] == announcement_id
    assert statuses(app, announcement_id) == {holder: "delivered"}


# --- acks that must change nothing ---------------------------------------------

def test_an_ack_for_another_devices_delivery_changes_nothing(app, api, speakers):
    target = speakers.register(EAST)  # no controller: the play stays "sent"
    intruder = speakers.register(WEST)
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    command_id = speaker_deliveries(app, announcement_id)[target].provider_id
    assert statuses(app, announcement_id) == {target: "sent"}
    device_says((intruder, {"event": "played", "command_id": command_id}),
                (target, {"event": "received", "command_id": command_id}))
    wait_for(lambda: statuses(app, announcement_id)[target] != "sent", "the genuine ack")
    assert statuses(app, announcement_id) == {target: "delivered"}


def test_unknown_repeated_and_late_acks_change_nothing(app, api, speakers):
    target = speakers.register(EAST)
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    delivery = speaker_deliveries(app, announcement_id)[target]
    engine = app.extensions["engine"]

    def ack(event, command_id=delivery.provider_id, **fields):
        return loudspeakers.apply_event(engine, target, {"event": event, "command_id": command_id,
                                                         **fields}, max_attempts=3)

    ack("played", command_id="a999-d999")
    ack("played", command_id=f"a{announcement_id + 1}-d{delivery.id}")
    ack("played", command_id="5f0c2d6e8a9b4c1d9e7f6a5b4c3d2e1f")  # a stop's id
    assert statuses(app, announcement_id) == {target: "sent"}
    ack("played")
    ack("played", duplicate=True)
    assert ack("received") is None and ack("rejected", reason="expired") is None
    assert statuses(app, announcement_id) == {target: "confirmed"}
    assert speaker_deliveries(app, announcement_id)[target].last_error is None


def test_a_batch_of_acks_is_recorded_together_each_by_the_rules(app, api, speakers):
    target = speakers.register(EAST)
    other = speakers.register(WEST)
    announcement_id = publish(api, areas=[EAST, WEST], channels=["loudspeaker"])
    run_jobs(app)
    sent = speaker_deliveries(app, announcement_id)
    mine, theirs = sent[target].provider_id, sent[other].provider_id
    with app.extensions["engine"].begin() as conn:
        resends = loudspeakers.record_acks(conn, [
            (target, {"event": "played", "command_id": mine}),
            (target, {"event": "received", "command_id": mine}),  # arrived late: stays played
            (target, {"event": "played", "command_id": theirs}),  # another device's delivery
            (other, {"event": "received", "command_id": theirs}),
            (other, {"event": "played", "command_id": "a999-d999"}),
        ], max_attempts=3)
    assert resends == []
    assert statuses(app, announcement_id) == {target: "confirmed", other: "delivered"}


# --- rejections and silence ----------------------------------------------------

def test_a_retryable_rejection_is_sent_again_and_a_final_one_fails(app, api, speakers):
    target = speakers.register(EAST)
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    delivery = speaker_deliveries(app, announcement_id)[target]
    device_says((target, {"event": "rejected", "command_id": delivery.provider_id,
                          "reason": "audio_unavailable", "detail": "timed out"}))
    with app.app_context():
        wait_for(lambda: queues.batch_has_live_job(announcement_id, "loudspeaker", delivery.batch),
                 "the retry to be queued")
    assert statuses(app, announcement_id) == {target: "planned"}
    run_jobs(app)
    again = speaker_deliveries(app, announcement_id)[target]
    assert (again.status, again.attempts) == ("sent", 2)
    device_says((target, {"event": "received", "command_id": again.provider_id}),
                (target, {"event": "rejected", "command_id": again.provider_id,
                          "reason": "audio_hash_mismatch"}))
    wait_for(lambda: statuses(app, announcement_id)[target] == "failed", "the final rejection")
    assert speaker_deliveries(app, announcement_id)[target].last_error == \
        "rejected by the device: audio_hash_mismatch"


def test_an_unacknowledged_command_is_sent_again_then_failed(app, api, speakers):
    silent = speakers.register(EAST)  # nobody plays: only an eavesdropper on its topic
    heard = []
    with mqtt_client(f"eavesdrop-{silent}") as client:
        subscribed = threading.Event()
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = lambda _c, _u, message: heard.append(json.loads(message.payload))
        client.subscribe(protocol.commands_topic(silent), qos=1)
        assert subscribed.wait(WAIT)
        announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
        run_jobs(app)
        outcomes = []
        for _ in range(3):
            outcomes.append(loudspeakers.resend_unacknowledged(app, timedelta(0)))
            run_jobs(app)
        wait_for(lambda: len(heard) == 3, "three sends")
    assert outcomes == [{"resent": 1, "failed": 0}, {"resent": 1, "failed": 0},
                        {"resent": 0, "failed": 1}]
    assert len({command["command_id"] for command in heard}) == 1
    assert len({command["sequence"] for command in heard}) == 3
    delivery = speaker_deliveries(app, announcement_id)[silent]
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.last_error == "no acknowledgement from the device after 3 sends"


def test_a_received_play_whose_played_ack_is_lost_is_asked_again(app, api, speakers):
    quiet = speakers.register(EAST)  # no controller: the test speaks for the device
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    sent = speaker_deliveries(app, announcement_id)[quiet]
    device_says((quiet, {"event": "received", "command_id": sent.provider_id}))
    wait_for(lambda: statuses(app, announcement_id)[quiet] == "delivered", "the received ack")
    assert loudspeakers.resend_unacknowledged(app, timedelta(0)) == {"resent": 1, "failed": 0}
    run_jobs(app)
    again = speaker_deliveries(app, announcement_id)[quiet]
    assert (again.status, again.attempts, again.provider_id) == ("sent", 2, sent.provider_id)
    device_says((quiet, {"event": "played", "command_id": again.provider_id, "duplicate": True}))
    wait_for(lambda: statuses(app, announcement_id)[quiet] == "confirmed", "the played ack")
