"""The loudspeaker wire contract and the checks it asks of a controller, without a broker."""
from __future__ import annotations

import base64
import json
import os
import re
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from channels.loudspeaker import acks, protocol
from channels.loudspeaker.channel import ClockSequence
from channels.loudspeaker.protocol.transport import BrokerAddress
from tests.channels.loudspeaker_commands import NOW, play

TOPIC = protocol.commands_topic("cun-01")


@pytest.fixture(scope="module")
def key():
    return protocol.SigningKey(Ed25519PrivateKey.generate())


def signed_bytes(key, command, topic=TOPIC):
    return protocol.encode(key.sign(topic, command))


# --- canonical bytes and signatures -----------------------------------------

def test_canonical_bytes_are_topic_newline_sorted_compact_utf8_json_without_signature():
    payload = {"text": "停水", "b": 2, "a": None, "drill": True, "signature": "ignored"}
    assert protocol.canonical_bytes("t/x", payload) == (
        b't/x\n{"a":null,"b":2,"drill":true,"text":"' + "停水".encode("utf-8") + b'"}')


def test_signed_command_verifies_and_comes_back_unchanged(key):
    command = play()
    assert protocol.verify(TOPIC, signed_bytes(key, command), [key.public_key]) == {
        **command, "signature": key.sign(TOPIC, command)["signature"]}


def test_signature_is_base64_of_64_bytes(key):
    assert len(base64.b64decode(key.sign(TOPIC, play())["signature"])) == 64


def test_tampered_payload_is_rejected(key):
    signed = key.sign(TOPIC, play())
    tampered = protocol.encode({**signed, "text": "空袭警报"})
    with pytest.raises(protocol.CommandRejected) as rejected:
        protocol.verify(TOPIC, tampered, [key.public_key])
    assert rejected.value.reason == protocol.BAD_SIGNATURE
    assert rejected.value.command["command_id"] == "a7-d1"  # still named in the ack


def test_command_moved_to_another_device_is_rejected(key):
    with pytest.raises(protocol.CommandRejected) as rejected:
        protocol.verify(protocol.commands_topic("cun-02"), signed_bytes(key, play()), [key.public_key])
    assert rejected.value.reason == protocol.BAD_SIGNATURE


def test_command_signed_with_another_key_is_rejected(key):
    other = protocol.SigningKey(Ed25519PrivateKey.generate())
    with pytest.raises(protocol.CommandRejected) as rejected:
        protocol.verify(TOPIC, signed_bytes(other, play()), [key.public_key])
    assert rejected.value.reason == protocol.BAD_SIGNATURE


def test_any_trusted_key_verifies_during_a_rotation(key):
    new = protocol.SigningKey(Ed25519PrivateKey.generate())
    assert protocol.verify(TOPIC, signed_bytes(new, play()), [key.public_key, new.public_key])


def test_payload_bytes_need_not_be_canonical_to_verify(key):
    loose = json.dumps(key.sign(TOPIC, play()), indent=2).encode()  # \u-escaped, spaced
    assert protocol.verify(TOPIC, loose, [key.public_key])["text"] == "停水通知"


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b'{"v":1,"v":1}', b'{"v":1.0}', b"\xff"])
def test_unreadable_payloads_are_malformed(key, raw):
    with pytest.raises(protocol.CommandRejected) as rejected:
        protocol.verify(TOPIC, raw, [key.public_key])
    assert rejected.value.reason == protocol.MALFORMED


def test_signed_command_with_unknown_field_is_malformed(key):
    with pytest.raises(protocol.CommandRejected) as rejected:
        protocol.verify(TOPIC, signed_bytes(key, {**play(), "volume": 11}), [key.public_key])
    assert rejected.value.reason == protocol.MALFORMED


def test_signed_command_of_unknown_version_is_unsupported(key):
    with pytest.raises(protocol.CommandRejected) as rejected:
        protocol.verify(TOPIC, signed_bytes(key, {**play(), "v": 2}), [key.public_key])
    assert rejected.value.reason == protocol.UNSUPPORTED


@pytest.mark.parametrize("overrides", [dict(audio_sha256=None), dict(audio_sha256="AB" * 32),
                                       dict(priority=10), dict(repeat=0), dict(sequence=2**60)])
def test_invalid_play_commands_are_not_built(overrides):
    with pytest.raises(protocol.CommandRejected):
        play(**overrides)


def test_text_only_play_is_valid():
    assert play(audio_url=None, audio_sha256=None)["audio_url"] is None


CANTONESE = {"language": "yue", "text": "停水通知（粤语）", "audio_url": "http://x/b.wav",
             "audio_sha256": "cd" * 32}


def test_a_play_in_one_language_has_no_followed_by_and_one_in_several_plays_each_in_turn(key):
    """#19, item 5: the field is left out for one language, so such a command is what it
    always was; with it, the parts signed and checked like the rest."""
    assert "followed_by" not in play()
    command = play(followed_by=[CANTONESE])
    verified = protocol.verify(TOPIC, signed_bytes(key, command), [key.public_key])
    assert {name: value for name, value in verified.items() if name != "signature"} == command
    parts = protocol.play_parts(command)
    assert [(p["text"], p["audio_sha256"], p.get("language")) for p in parts] == [
        ("停水通知", "ab" * 32, None), ("停水通知（粤语）", "cd" * 32, "yue")]
    assert all(p["command_id"] == "a7-d1" and p["repeat"] == 1 for p in parts)


@pytest.mark.parametrize("followed_by", [
    [], [{**CANTONESE, "audio_sha256": None}], [{**CANTONESE, "volume": 3}],
    [{k: v for k, v in CANTONESE.items() if k != "text"}], ["yue"], [CANTONESE] * 8,
    [{**CANTONESE, "language": 7}]])
def test_malformed_further_languages_are_refused(followed_by):
    with pytest.raises(protocol.CommandRejected) as refused:
        protocol.check_command({**play(), "followed_by": followed_by})
    assert refused.value.reason == protocol.MALFORMED


# --- keys -------------------------------------------------------------------

def test_signing_key_is_created_private_on_first_use_and_reloaded(tmp_path):
    path = str(tmp_path / "keys" / "speaker.pem")
    created = protocol.SigningKey.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert protocol.SigningKey.load_or_create(path).public_base64() == created.public_base64()
    assert [name for name in os.listdir(tmp_path / "keys")] == ["speaker.pem"]


def test_public_key_loads_from_pem_and_from_base64(key):
    for text in (key.public_pem(), key.public_base64()):
        loaded = protocol.load_public_key(text)
        assert protocol.verify(TOPIC, signed_bytes(key, play()), [loaded])


# --- expiry and replay ------------------------------------------------------

def test_expired_command_is_rejected():
    command = play()
    protocol.check_fresh(command, NOW + 3599)
    with pytest.raises(protocol.CommandRejected) as rejected:
        protocol.check_fresh(command, NOW + 3600)
    assert rejected.value.reason == protocol.EXPIRED


def test_sequence_must_be_above_the_last_accepted():
    protocol.check_sequence(play(sequence=101), 100)
    for sequence in (100, 99):
        with pytest.raises(protocol.CommandRejected) as rejected:
            protocol.check_sequence(play(sequence=sequence), 100)
        assert rejected.value.reason == protocol.STALE_SEQUENCE


def test_clock_sequence_is_strictly_increasing_and_not_below_the_clock():
    sequences = ClockSequence()
    values = [sequences.next("cun-01") for _ in range(1000)]
    assert values == sorted(set(values))
    assert values[0] > NOW * 1_000_000


# --- acks and addresses -----------------------------------------------------

def test_ack_parsing():
    event = protocol.encode(protocol.ack(protocol.PLAYED, play(), now=NOW))
    assert acks.parse_event(protocol.events_topic("cun-01"), event) == (
        "cun-01", {"v": 1, "event": "played", "command_id": "a7-d1", "sequence": 100,
                   "announcement_id": 7, "at": NOW})
    assert acks.parse_event(protocol.events_topic("cun-01"), b'{"event":"exploded"}') is None
    assert acks.parse_event(protocol.status_topic("cun-01"), event) is None
    assert acks.parse_event("elsewhere/cun-01/events", event) is None


def test_presence_parsing():
    assert acks.parse_presence(protocol.status_topic("cun-01"), b"online") == ("cun-01", True)
    assert acks.parse_presence(protocol.status_topic("cun-01"), b"offline") == ("cun-01", False)
    assert acks.parse_presence(protocol.status_topic("cun-01"), b"") == ("cun-01", False)
    assert acks.parse_presence(protocol.status_topic("cun-01"), b"maybe") is None


def test_only_some_rejections_are_worth_a_resend():
    assert acks.is_retryable({"event": "rejected", "reason": protocol.STALE_SEQUENCE})
    assert not acks.is_retryable({"event": "rejected", "reason": protocol.BAD_SIGNATURE})


@pytest.mark.parametrize("device_id", ["", "a/b", "a+", "#", "x" * 65])
def test_device_ids_that_would_break_topics_are_refused(device_id):
    with pytest.raises(ValueError):
        protocol.commands_topic(device_id)


def test_broker_urls():
    assert BrokerAddress.parse("mqtts://gw:p%40ss@broker.example:8884") == BrokerAddress(
        "broker.example", 8884, "gw", "p@ss", tls=True)
    local = BrokerAddress.parse("mqtt://127.0.0.1?protocol=3.1.1")
    assert (local.port, local.mqtt5, local.safe_url()) == (1883, False, "mqtt://127.0.0.1:1883?protocol=3.1.1")
    with pytest.raises(ValueError):
        BrokerAddress.parse("http://broker")


# --- the spec's example ------------------------------------------------------

def test_the_documented_example_commands_verify_with_the_documented_key():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "loudspeaker-protocol.md")
    spec = open(path, encoding="utf-8").read()
    public_key = protocol.load_public_key(
        re.search(r"-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----", spec, re.S).group(0))
    topic = re.search(r"Topic: `([^`]+)`", spec).group(1)
    examples = re.findall(r"^```json\n(\{.*\"signature\".*\})\n```", spec, re.M)
    assert len(examples) == 2
    verified = [protocol.verify(topic, example.encode("utf-8"), [public_key]) for example in examples]
    assert [command["type"] for command in verified] == ["play", "stop"]
