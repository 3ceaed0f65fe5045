"""The loudspeaker tests of the gateway, end to end: the app on the real broker, controllers, helpers.

Real Mosquitto on 127.0.0.1:1883, reference controllers as separate processes
(so one can be killed without a goodbye), real rq jobs, and the gateway's ack
listener from ``gateway.delivery.loudspeakers.listen``. The app is served over HTTP so
controllers can download the synthesized audio. Villages are these tests' own
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

import pytest
from sqlalchemy import insert, select
from werkzeug.serving import make_server

from channels.loudspeaker import protocol
from channels.loudspeaker.protocol import transport
from devices.controller.players import read_sink
from gateway.delivery import loudspeakers
from gateway.store import roster
from gateway.store.schema import areas, deliveries, devices

MOSQUITTO_URL = "mqtt://127.0.0.1:1883"
WAIT = 30  # seconds for something that should happen (a play includes downloading the audio)
EAST, WEST, SOUTH = "450702100211", "450702100212", "450702100213"
#: Device id -> its ack key, as `speakers add` gave it to the device's controller.
ACK_KEYS: dict[str, protocol.SigningKey] = {}
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

    def register(self, village, *, test_device=False, keyed=True) -> str:
        """A registered device with its credentials, as `speakers add` makes them;
        ``keyed=False``: one registered before devices had any (no ack key)."""
        device_id = f"spk-{uuid.uuid4().hex[:12]}"
        with self.app.extensions["engine"].begin() as conn:
            roster.add_device(conn, device_id, village, test_device=test_device, actor="test")
            if keyed:
                credentials = roster.issue_device_credentials(conn, device_id, actor="test")
                ACK_KEYS[device_id] = protocol.SigningKey.from_text(credentials.ack_key)
        return device_id

    def start(self, village, *, test_device=False, play_seconds=0.0) -> str:
        """A registered device with its controller running and shown online."""
        device_id = self.register(village, test_device=test_device)
        ack_key = self.tmp_path / device_id / "ack.key"
        ack_key.parent.mkdir(parents=True, exist_ok=True)
        ack_key.write_text(ACK_KEYS[device_id].private_base64() + "\n")
        self.processes[device_id] = subprocess.Popen(
            [sys.executable, "-m", "devices.controller", "--device-id", device_id,
             "--mqtt-url", MOSQUITTO_URL, "--public-key", str(self.public_key),
             "--ack-key", str(ack_key), "--state-dir", str(self.tmp_path / device_id / "state"),
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


def device_says(*acks, key_of=ACK_KEYS.get):
    """Publish ``(device_id, ack)`` pairs from one client, so they arrive in this order,
    each signed with ``key_of(device_id)`` (by default the device's own ack key; none: unsigned)."""
    with mqtt_client(f"raw-{uuid.uuid4().hex[:12]}") as client:
        for device_id, ack in acks:
            topic = protocol.events_topic(device_id)
            payload = {"v": 1, "sequence": 1, "at": int(time.time()), **ack}
            key = key_of(device_id)
            payload = key.sign(topic, payload) if key else payload
            client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(WAIT)


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
