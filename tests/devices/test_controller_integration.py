"""The reference controller on the real Mosquitto: what it refuses, duplicates, stop and presence.

Driven through ``tests.channels.loudspeaker_rig``: the gateway's channel and ack
listener around one controller, device ids unique per test.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from channels.base import Outgoing
from channels.loudspeaker import protocol
from channels.loudspeaker.acks import AckListener
from channels.loudspeaker.channel import MqttLoudspeakerChannel
from devices.controller.players import SinkPlayer, read_sink
from tests.channels.loudspeaker_rig import (
    AUDIO,
    AUDIO_SHA,
    MOSQUITTO_URL,
    REDIS_URL,
    WAIT,
    Events,
    Rig,
    clear_presence,
    rendered,
    serve_audio,
    unique_device,
)

pytestmark = pytest.mark.integration


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
    with serve_audio(tmp_path_factory.mktemp("audio")) as url:
        yield url


@pytest.fixture
def rig(tmp_path):
    rig = Rig(tmp_path, MOSQUITTO_URL).start()
    yield rig
    rig.close()


# --- what must be refused ---------------------------------------------------

def test_tampered_payload_is_rejected_and_reported(rig):
    forged = {**rig.forge(), "text": "空袭警报"}
    rig.publish_raw(protocol.encode(forged))
    rejected = rig.events.ack(rig.device, "rejected", command_id=forged["command_id"])
    assert rejected["reason"] == protocol.BAD_SIGNATURE
    assert rig.played(forged["command_id"]) == []


def signed_of_size(rig, size):
    """A command signed by the gateway whose encoded payload is exactly ``size`` bytes."""
    topic = protocol.commands_topic(rig.device)
    command = {key: value for key, value in rig.forge().items() if key != "signature"}
    bare = len(protocol.encode(rig.key.sign(topic, {**command, "text": ""})))
    return rig.key.sign(topic, {**command, "text": "a" * (size - bare)})


def test_an_oversized_payload_is_refused_before_it_is_parsed(rig, monkeypatch):
    parsed, stored = [], []
    # verify() is where a controller first reads a payload (JSON, then the signature).
    monkeypatch.setattr(protocol, "verify", lambda *args: parsed.append(args) or {})
    monkeypatch.setattr(rig.controller.state, "_save", lambda: stored.append(True))
    # 20 MB, signed: handed to the controller as paho would hand it over.
    flood = signed_of_size(rig, 20 * 2**20)
    rig.controller.handle(protocol.encode(flood))
    # Just over the limit, through the broker (a larger packet the broker itself drops:
    # the controller connects with an MQTT 5 maximum packet size).
    over = signed_of_size(rig, protocol.MAX_COMMAND_BYTES + 1)
    rig.publish_raw(protocol.encode(over))
    rig.events.wait_for(lambda: len(rig.events.of(rig.device, "rejected")) == 2)
    for rejected in rig.events.of(rig.device, "rejected"):
        assert (rejected["reason"], rejected["command_id"]) == (protocol.MALFORMED, None)
        assert rejected["detail"] == f"payload over {protocol.MAX_COMMAND_BYTES} bytes"
    assert parsed == [] and stored == []  # neither parsed nor stored (nor fsynced)
    assert rig.played(flood["command_id"]) == rig.played(over["command_id"]) == []


def test_every_ack_is_signed_with_the_devices_ack_key(rig):
    forged = {**rig.forge(), "text": "空袭警报"}
    rig.publish_raw(protocol.encode(forged))
    rejected = rig.events.ack(rig.device, "rejected", command_id=forged["command_id"])
    topic = protocol.events_topic(rig.device)
    assert protocol.verify_ack(topic, rejected, rig.ack_key.public_key)
    assert not protocol.verify_ack(topic, {**rejected, "reason": "expired"}, rig.ack_key.public_key)
    assert not protocol.verify_ack(protocol.events_topic("another"), rejected, rig.ack_key.public_key)


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


def test_a_play_in_two_languages_plays_both_audios_in_turn(rig, audio_url):
    """#19, item 5: the gateway's channel sends a Mandarin then Cantonese command; the reference
    controller downloads, checks and plays each audio, then acks ``played`` once."""
    cantonese_url = audio_url.replace("notice.wav", "forged.wav")  # another file, its own hash
    cantonese_sha = hashlib.sha256(AUDIO + b"x").hexdigest()
    receipt = rig.channel.send(rig.outgoing(audio_url, followed_by=[
        {"language": "yue", "text": "县人民政府信息办通知（粤语）", "audio_url": cantonese_url,
         "audio_sha256": cantonese_sha}]))
    rig.events.ack(rig.device, "played", command_id=receipt.provider_id)
    assert [(record["language"], record["audio_sha256"]) for record in rig.played(receipt.provider_id)] \
        == [(None, AUDIO_SHA), ("yue", cantonese_sha)]


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
    ack_key = protocol.SigningKey.generate()
    (tmp_path / "ack.key").write_text(ack_key.private_base64() + "\n")
    listener = AckListener(MOSQUITTO_URL, events.on_event, events.on_presence, client_id=f"acks-{device}")
    listener.start()
    process = subprocess.Popen(
        [sys.executable, "-m", "devices.controller", "--device-id", device,
         "--mqtt-url", MOSQUITTO_URL, "--public-key", str(tmp_path / "gateway.pub"),
         "--ack-key", str(tmp_path / "ack.key"),
         "--state-dir", str(tmp_path / "state"), "--sink-dir", str(tmp_path / "sink")],
        cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        events.wait_presence(device, True)
        receipt = channel.send(Outgoing(1, 8, device, rendered(audio_url)))
        played = events.ack(device, "played", command_id=receipt.provider_id)
        # Signed with the key given as --ack-key, over the device's own events topic.
        assert protocol.verify_ack(protocol.events_topic(device), played, ack_key.public_key)
        process.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sends the last will
        events.wait_presence(device, False)
    finally:
        process.kill()
        process.wait()
        channel.close()
        clear_presence(MOSQUITTO_URL, device)
        listener.stop(end_session=True)
