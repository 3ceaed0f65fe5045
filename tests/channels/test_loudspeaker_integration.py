"""The loudspeaker channel and ack listener end to end against the real brokers on this machine.

The gateway's channel publishes, a reference controller verifies and "plays"
to a file sink, and the ack listener hears what the controller reports (see
``tests.channels.loudspeaker_rig``). What the controller refuses is in
``tests/devices/test_controller_integration.py``.
"""
from __future__ import annotations

import threading
import uuid

import pytest
import redis

from channels.base import ChannelError, Outgoing, Receipt
from channels.loudspeaker.acks import AckListener
from channels.loudspeaker.channel import RedisSequence
from channels.loudspeaker.protocol import transport
from tests.channels.loudspeaker_rig import (
    AUDIO_SHA,
    MOSQUITTO_URL,
    REDIS_URL,
    WAIT,
    Rig,
    rendered,
    serve_audio,
    unique_device,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def audio_url(tmp_path_factory):
    with serve_audio(tmp_path_factory.mktemp("audio")) as url:
        yield url


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


# --- the ack listener's session ---------------------------------------------

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
