"""Loudspeakers end to end against real brokers on this machine.

The gateway's channel publishes, a reference controller verifies and "plays"
to a file sink, and the ack listener hears what the controller reports.
Device ids are unique per test, so parallel runs on the shared Mosquitto do
not collide; each test clears the retained presence it left behind.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from channels.base import ChannelError, Outgoing, Receipt
from channels.loudspeaker import protocol
from channels.loudspeaker.protocol import transport
from channels.loudspeaker.acks import AckListener
from channels.loudspeaker.channel import MqttLoudspeakerChannel, RedisSequence
from devices.broker import EmbeddedBroker, free_port
from devices.controller.client import Controller
from devices.controller.players import SinkPlayer, read_sink
from messages.render import Rendered

pytestmark = pytest.mark.integration

MOSQUITTO_URL = "mqtt://127.0.0.1:1883"
REDIS_URL = "redis://127.0.0.1:6379/0"
WAIT = 15  # seconds to wait for an event that should come
AUDIO = b"RIFF" + bytes(range(256)) * 64
AUDIO_SHA = hashlib.sha256(AUDIO).hexdigest()


# --- helpers ----------------------------------------------------------------

class Events:
    """Everything the ack listener heard, with waiting for a particular event."""

    def __init__(self):
        self.acks: list[tuple[str, dict]] = []
        self.presence: list[tuple[str, bool]] = []
        self._changed = threading.Condition()

    def on_event(self, device_id, event):
        with self._changed:
            self.acks.append((device_id, event))
            self._changed.notify_all()

    def on_presence(self, device_id, online):
        with self._changed:
            self.presence.append((device_id, online))
            self._changed.notify_all()

    def ack(self, device_id, event, **fields) -> dict:
        def match():
            return next((ack for device, ack in self.acks if device == device_id and ack["event"] == event
                         and all(ack.get(k) == v for k, v in fields.items())), None)
        with self._changed:
            assert self._changed.wait_for(match, WAIT), f"no {event} {fields} from {device_id}: {self.acks}"
            return match()

    def wait_presence(self, device_id, online):
        with self._changed:
            assert self._changed.wait_for(lambda: (device_id, online) in self.presence, WAIT), self.presence

    def of(self, device_id, event):
        with self._changed:
            return [ack for device, ack in self.acks if device == device_id and ack["event"] == event]


class StartSignallingSink(SinkPlayer):
    """A sink whose plays last until cancelled, telling the test when one starts."""

    def __init__(self, directory):
        super().__init__(directory, seconds=600)
        self.started = threading.Event()

    def play(self, command, audio_path, cancelled):
        self.started.set()
        super().play(command, audio_path, cancelled)


@pytest.fixture(scope="module")
def audio_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    (root / "notice.wav").write_bytes(AUDIO)
    (root / "forged.wav").write_bytes(AUDIO + b"x")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/notice.wav"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def unique_device() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def rendered(audio_url, text="县人民政府信息办通知：明日停水。", **data):
    return Rendered("loudspeaker", "zh", text,
                    {"audio_url": audio_url, "audio_sha256": AUDIO_SHA, "drill": False, **data})


class Rig:
    """Channel, ack listener and one in-process controller on one broker."""

    def __init__(self, tmp_path, mqtt_url, *, player=None, redis_url=REDIS_URL):
        self.tmp_path = tmp_path
        self.mqtt_url = mqtt_url
        self.device = unique_device()
        self.channel = MqttLoudspeakerChannel({"mqtt_url": mqtt_url, "redis_url": redis_url,
                                               "signing_key_path": str(tmp_path / "gateway.pem")})
        self.key = self.channel.signing_key
        self.events = Events()
        self.listener = AckListener(mqtt_url, self.events.on_event, self.events.on_presence,
                                    client_id=f"acks-{self.device}")
        self.sink_dir = str(tmp_path / "sink")
        self.player = player or SinkPlayer(self.sink_dir)
        self.controller = Controller(self.device, mqtt_url, [self.key.public_key],
                                     str(tmp_path / "state"), self.player)
        self._raw = None
        self._deliveries = 0

    def start(self):
        self.listener.start()
        self.controller.start()
        self.events.wait_presence(self.device, True)
        return self

    def close(self):
        self.controller.stop()
        self.channel.close()
        if self._raw is not None:
            self._raw.loop_stop()
            self._raw.disconnect()
        clear_presence(self.mqtt_url, self.device)
        self.listener.stop(end_session=True)

    def outgoing(self, audio_url, announcement_id=7, **data):
        self._deliveries += 1
        return Outgoing(self._deliveries, announcement_id, self.device, rendered(audio_url, **data))

    def played(self, command_id):
        return [record for record in read_sink(self.sink_dir)
                if record["command_id"] == command_id and record["what"] == "started"]

    def publish_raw(self, payload: bytes):
        """Publish bytes on the device's commands topic, as an attacker or a replaying broker would."""
        if self._raw is None:
            self._raw = transport.new_client(transport.BrokerAddress.parse(self.mqtt_url),
                                             f"raw-{self.device}")
            transport.start(self._raw, transport.BrokerAddress.parse(self.mqtt_url))
        self._raw.publish(protocol.commands_topic(self.device), payload, qos=1).wait_for_publish(WAIT)

    def forge(self, *, key=None, now=None, sequence=None, command_id=None, audio_url=None):
        """A signed play command built by hand."""
        command = protocol.play_command(
            command_id=command_id or uuid.uuid4().hex, announcement_id=99, text="伪造",
            audio_url=audio_url, audio_sha256=AUDIO_SHA if audio_url else None, priority=9, repeat=1,
            sequence=sequence or time.time_ns() // 1_000 + 10_000_000, ttl_seconds=3600, drill=False,
            now=now)
        return (key or self.key).sign(protocol.commands_topic(self.device), command)


def clear_presence(mqtt_url, device_id):
    """Remove the retained status a test device left on the shared broker."""
    client = transport.new_client(transport.BrokerAddress.parse(mqtt_url), f"clear-{device_id}")
    transport.start(client, transport.BrokerAddress.parse(mqtt_url))
    client.publish(protocol.status_topic(device_id), b"", qos=1, retain=True).wait_for_publish(WAIT)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def rig(tmp_path):
    rig = Rig(tmp_path, MOSQUITTO_URL).start()
    yield rig
    rig.close()


# --- the happy path ---------------------------------------------------------

def test_signed_command_is_verified_played_and_acknowledged(rig, audio_url):
    receipt = rig.channel.send(rig.outgoing(audio_url))
    played = rig.events.ack(rig.device, "played", command_id=receipt.provider_id)
    received = rig.events.ack(rig.device, "received", command_id=receipt.provider_id)
    assert receipt.status == "sent"
    assert played["announcement_id"] == 7 and played["sequence"] == received["sequence"]
    [record] = rig.played(receipt.provider_id)
    assert record["text"] == "县人民政府信息办通知：明日停水。"
    assert record["audio_sha256"] == AUDIO_SHA


def test_a_batch_is_published_at_once_and_each_send_has_its_own_outcome(rig, audio_url):
    paced = []
    first, second = rig.outgoing(audio_url), rig.outgoing(audio_url)
    nowhere = Outgoing(99, 7, "no such device/+", rendered(audio_url))
    outcomes = rig.channel.send_many([first, nowhere, second], lambda: paced.append(1))
    assert len(paced) == 2  # once per command published
    assert [type(outcome) for outcome in outcomes] == [Receipt, ChannelError, Receipt]
    assert outcomes[1].permanent and outcomes[1].code == "bad_device_id"
    played = [rig.events.ack(rig.device, "played", command_id=outcome.provider_id)
              for outcome in (outcomes[0], outcomes[2])]
    assert played[0]["sequence"] < played[1]["sequence"]


# --- what must be refused ---------------------------------------------------

def test_tampered_payload_is_rejected_and_reported(rig):
    forged = {**rig.forge(), "text": "空袭警报"}
    rig.publish_raw(protocol.encode(forged))
    rejected = rig.events.ack(rig.device, "rejected", command_id=forged["command_id"])
    assert rejected["reason"] == protocol.BAD_SIGNATURE
    assert rig.played(forged["command_id"]) == []


def test_command_signed_with_another_key_is_rejected(rig):
    stranger = protocol.SigningKey(Ed25519PrivateKey.generate())
    forged = rig.forge(key=stranger)
    rig.publish_raw(protocol.encode(forged))
    assert rig.events.ack(rig.device, "rejected", command_id=forged["command_id"])["reason"] == \
        protocol.BAD_SIGNATURE


def test_replayed_sequence_is_rejected(rig, audio_url):
    receipt = rig.channel.send(rig.outgoing(audio_url))
    accepted = rig.events.ack(rig.device, "played", command_id=receipt.provider_id)
    replay = rig.forge(sequence=accepted["sequence"])
    rig.publish_raw(protocol.encode(replay))
    rejected = rig.events.ack(rig.device, "rejected", command_id=replay["command_id"])
    assert (rejected["reason"], rejected["sequence"]) == (protocol.STALE_SEQUENCE, accepted["sequence"])


def test_expired_command_is_rejected(rig):
    stale = rig.forge(now=int(time.time()) - 7200)  # expired an hour ago
    rig.publish_raw(protocol.encode(stale))
    assert rig.events.ack(rig.device, "rejected", command_id=stale["command_id"])["reason"] == \
        protocol.EXPIRED
    assert rig.played(stale["command_id"]) == []


def test_audio_that_does_not_match_its_hash_is_rejected(rig, audio_url):
    receipt = rig.channel.send(rig.outgoing(audio_url.replace("notice.wav", "forged.wav")))
    rejected = rig.events.ack(rig.device, "rejected", command_id=receipt.provider_id)
    assert rejected["reason"] == protocol.AUDIO_HASH_MISMATCH
    assert rig.played(receipt.provider_id) == []


# --- duplicates -------------------------------------------------------------

def test_duplicate_delivery_plays_once(rig, audio_url):
    command = rig.forge(audio_url=audio_url)
    raw = protocol.encode(command)
    rig.publish_raw(raw)
    rig.events.ack(rig.device, "played", command_id=command["command_id"])
    rig.publish_raw(raw)  # what a QoS 1 redelivery looks like to the controller
    again = rig.events.ack(rig.device, "played", command_id=command["command_id"], duplicate=True)
    assert again["sequence"] == command["sequence"]
    assert len(rig.played(command["command_id"])) == 1


def test_gateway_resend_of_a_delivery_is_acknowledged_not_replayed(rig, audio_url):
    delivery = rig.outgoing(audio_url)
    first = rig.channel.send(delivery)
    rig.events.ack(rig.device, "played", command_id=first.provider_id)
    second = rig.channel.send(delivery)  # e.g. after an ack timeout
    assert second.provider_id == first.provider_id
    rig.events.ack(rig.device, "played", command_id=first.provider_id, duplicate=True)
    assert len(rig.played(first.provider_id)) == 1


# --- stop and presence ------------------------------------------------------

def test_stop_cancels_a_play(tmp_path, audio_url):
    sink = StartSignallingSink(str(tmp_path / "sink"))
    rig = Rig(tmp_path, MOSQUITTO_URL, player=sink).start()
    try:
        receipt = rig.channel.send(rig.outgoing(audio_url, announcement_id=31))
        assert sink.started.wait(WAIT)
        stop_id = rig.channel.stop(rig.device, 31)
        stopped = rig.events.ack(rig.device, "stopped", command_id=receipt.provider_id)
        assert stopped["stop_command_id"] == stop_id
        rig.events.ack(rig.device, "received", command_id=stop_id)
        assert [record["what"] for record in read_sink(rig.sink_dir)] == ["started", "interrupted"]
        assert rig.events.of(rig.device, "played") == []
    finally:
        rig.close()


def test_killed_controller_shows_offline(tmp_path, audio_url):
    events, device = Events(), unique_device()
    channel = MqttLoudspeakerChannel({"mqtt_url": MOSQUITTO_URL, "redis_url": REDIS_URL,
                                      "signing_key_path": str(tmp_path / "gateway.pem")})
    (tmp_path / "gateway.pub").write_text(channel.signing_key.public_pem())
    listener = AckListener(MOSQUITTO_URL, events.on_event, events.on_presence, client_id=f"acks-{device}")
    listener.start()
    process = subprocess.Popen(
        [sys.executable, "-m", "devices.controller", "--device-id", device,
         "--mqtt-url", MOSQUITTO_URL, "--public-key", str(tmp_path / "gateway.pub"),
         "--state-dir", str(tmp_path / "state"), "--sink-dir", str(tmp_path / "sink")],
        cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        events.wait_presence(device, True)
        receipt = channel.send(Outgoing(1, 8, device, rendered(audio_url)))
        events.ack(device, "played", command_id=receipt.provider_id)
        process.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sends the last will
        events.wait_presence(device, False)
    finally:
        process.kill()
        process.wait()
        channel.close()
        clear_presence(MOSQUITTO_URL, device)
        listener.stop(end_session=True)


def session_kept(client_id: str) -> bool:
    """Whether the broker still holds a session for ``client_id`` (CONNACK's session present)."""
    present = []
    connected = threading.Event()
    client = transport.new_client(transport.BrokerAddress.parse(MOSQUITTO_URL), client_id,
                                  persistent=True)
    client.on_connect = lambda c, u, flags, reason, p: (present.append(flags.session_present),
                                                        connected.set())
    transport.start(client, transport.BrokerAddress.parse(MOSQUITTO_URL), persistent=True)
    assert connected.wait(WAIT)
    client.disconnect(properties=transport.ending_session(
        transport.BrokerAddress.parse(MOSQUITTO_URL)))
    client.loop_stop()
    return present[0]


@pytest.mark.parametrize("end_session", [False, True])
def test_a_stopped_listener_keeps_its_session_unless_told_to_end_it(end_session):
    client_id = f"acks-session-{uuid.uuid4().hex[:8]}"
    listener = AckListener(MOSQUITTO_URL, lambda *_: None, lambda *_: None, client_id=client_id)
    listener.start()
    listener.stop(end_session=end_session)
    # Kept, acks published while the gateway restarts wait for it; ended, nothing piles up.
    assert session_kept(client_id) is not end_session


# --- sequence numbers -------------------------------------------------------

def test_sequences_never_go_backwards_when_redis_forgets():
    sequences, device = RedisSequence(REDIS_URL), unique_device()
    key = RedisSequence.KEY.format(device_id=device)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        before = [sequences.next(device) for _ in range(50)]
        client.delete(key)  # what a Redis restart does here
        after = sequences.next(device)
    finally:
        client.delete(key)
    assert before == sorted(set(before)) and after > before[-1]


# --- the quickstart broker --------------------------------------------------

def test_embedded_broker_carries_the_whole_exchange(tmp_path, audio_url):
    broker = EmbeddedBroker()
    broker.start()
    try:
        rig = Rig(tmp_path, broker.url).start()
        try:
            receipt = rig.channel.send(rig.outgoing(audio_url))
            rig.events.ack(rig.device, "played", command_id=receipt.provider_id)
            assert len(rig.played(receipt.provider_id)) == 1
        finally:
            rig.close()
    finally:
        broker.stop()


# --- the example Mosquitto hardening ----------------------------------------

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "mosquitto")
MOSQUITTO = "/usr/sbin/mosquitto"


@pytest.fixture
def hardened_broker(tmp_path):
    """A second Mosquitto on a free loopback port, running the example config and ACL."""
    if not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto_passwd is not installed")
    passwd = tmp_path / "passwd"
    accounts = {"tongbao-gateway": "gw-secret", "cun-a": "a-secret", "cun-b": "b-secret"}
    for user, password in accounts.items():
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if not passwd.exists() else []),
                        str(passwd), user, password], check=True)
    shutil.copy(os.path.join(DOCS, "acl"), tmp_path / "acl")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(adapt_example_config(open(os.path.join(DOCS, "mosquitto.conf")).read(),
                                           tmp_path, port))
    process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        wait_for_port(port, process)
        yield lambda user: f"mqtt://{user}:{accounts[user]}@127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def adapt_example_config(text, tmp_path, port):
    """The example config with this test's paths and port; TLS listener left out."""
    text = text.replace("/etc/mosquitto/tongbao/passwd", str(tmp_path / "passwd"))
    text = text.replace("/etc/mosquitto/tongbao/acl", str(tmp_path / "acl"))
    text = re.sub(r"^persistence true$", "persistence false", text, flags=re.M)
    text = re.sub(r"^(listener 8883|certfile .*|keyfile .*)$", "", text, flags=re.M)
    text = re.sub(r"^listener 1883 127\.0\.0\.1$", f"listener {port} 127.0.0.1", text, flags=re.M)
    # Running as root, Mosquitto would switch to a user who cannot read pytest's tmp dir.
    return text + "\nuser root\nlog_dest stderr\n"


def wait_for_port(port, process):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("hardened mosquitto did not listen")


class Probe:
    """A bare MQTT 5 client recording what it receives and every broker verdict."""

    def __init__(self, url, client_id):
        self.address = transport.BrokerAddress.parse(url)
        self.client = transport.new_client(self.address, client_id)
        self.connack = None
        self.puback: dict[int, mqtt.ReasonCode] = {}
        self.suback = None
        self.messages: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()
        self.client.on_connect = self._record("connack")
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._set("suback", codes)
        self.client.on_publish = lambda c, u, mid, code, p: self._put(mid, code)
        self.client.on_message = lambda c, u, message: self._message(message)

    def connect(self):
        transport.start(self.client, self.address)
        self._wait(lambda: self.connack is not None)
        return self.connack

    def subscribe(self, topic):
        self.suback = None
        self.client.subscribe(topic, qos=1)
        self._wait(lambda: self.suback is not None)
        return self.suback[0]

    def publish(self, topic, payload=b"x", retain=False):
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self._wait(lambda: info.mid in self.puback)
        return self.puback[info.mid]

    def received(self, topic):
        self._wait(lambda: any(message_topic == topic for message_topic, _ in self.messages))

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def _wait(self, predicate):
        with self._changed:
            assert self._changed.wait_for(predicate, WAIT), "the broker did not answer"

    def _record(self, name):
        return lambda c, u, flags, code, p: self._set(name, code)

    def _set(self, name, value):
        with self._changed:
            setattr(self, name, value)
            self._changed.notify_all()

    def _put(self, mid, code):
        with self._changed:
            self.puback[mid] = code
            self._changed.notify_all()

    def _message(self, message):
        with self._changed:
            self.messages.append((message.topic, message.payload))
            self._changed.notify_all()


def test_example_mosquitto_acl_confines_each_device(hardened_broker):
    gateway = Probe(hardened_broker("tongbao-gateway"), "gw")
    device_a = Probe(hardened_broker("cun-a"), "cun-a")
    try:
        assert not gateway.connect().is_failure and not device_a.connect().is_failure
        own, other = protocol.commands_topic("cun-a"), protocol.commands_topic("cun-b")
        assert not device_a.subscribe(own).is_failure
        device_a.subscribe(other)  # may be granted, but nothing may arrive through it
        assert not gateway.publish(other, b"for b").is_failure
        assert not gateway.publish(own, b"for a").is_failure
        # Messages from one publisher arrive in order: once "for a" is here,
        # "for b" would have been too.
        device_a.received(own)
        assert [topic for topic, _ in device_a.messages] == [own]

        assert not device_a.publish(protocol.events_topic("cun-a")).is_failure
        assert not device_a.publish(protocol.status_topic("cun-a"), b"online").is_failure
        for forbidden in (protocol.events_topic("cun-b"), protocol.status_topic("cun-b"), other):
            assert device_a.publish(forbidden).is_failure, forbidden
        assert gateway.publish(protocol.events_topic("cun-a")).is_failure  # the gateway only listens
    finally:
        gateway.close()
        device_a.close()


@pytest.mark.parametrize("url_user, password", [(None, None), ("cun-a", "wrong")])
def test_example_mosquitto_refuses_anonymous_and_wrong_passwords(hardened_broker, url_user, password):
    url = hardened_broker("cun-a")
    port = url.rsplit(":", 1)[1]
    credentials = f"{url_user}:{password}@" if url_user else ""
    probe = Probe(f"mqtt://{credentials}127.0.0.1:{port}", "intruder")
    try:
        assert probe.connect().is_failure
    finally:
        probe.close()
