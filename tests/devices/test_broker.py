"""The embedded quickstart broker: passwords for everyone, each device on its own topics only."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import pytest

from channels.loudspeaker import protocol
from devices.broker import GATEWAY_USER, EmbeddedBroker, free_port
from tests.channels.loudspeaker_rig import Rig, serve_audio
from tests.channels.test_loudspeaker_mosquitto import Probe

pytestmark = pytest.mark.integration

PASSWORDS = {GATEWAY_USER: "gw-secret", "cun-a": "a-secret", "cun-b": "b-secret"}


@pytest.fixture(scope="module")
def audio_url(tmp_path_factory):
    with serve_audio(tmp_path_factory.mktemp("audio")) as url:
        yield url


@pytest.fixture
def broker():
    broker = EmbeddedBroker(check_password=lambda user, password: PASSWORDS.get(user) == password)
    broker.start()
    yield broker
    broker.stop()


def probe(broker, user, client_id=None, password=None):
    return Probe(broker.url_for(user, password or PASSWORDS[user]), client_id or user)


def test_embedded_broker_carries_the_whole_exchange(tmp_path, audio_url, broker):
    rig = Rig(tmp_path, broker.url_for(GATEWAY_USER, PASSWORDS[GATEWAY_USER]),
              device_url=lambda device, password: broker.url_for(device, password))
    PASSWORDS[rig.device] = rig.device_password
    rig.start()
    try:
        receipt = rig.channel.send(rig.outgoing(audio_url))
        rig.events.ack(rig.device, "played", command_id=receipt.provider_id)
        assert len(rig.played(receipt.provider_id)) == 1
    finally:
        rig.close()
        del PASSWORDS[rig.device]


@pytest.mark.parametrize("user, password", [(None, None), ("cun-a", "wrong"), ("nobody", "x"),
                                            (GATEWAY_USER, "a-secret")])
def test_anonymous_clients_and_wrong_passwords_are_refused(broker, user, password):
    port = broker.port
    credentials = f"{user}:{password}@" if user else ""
    intruder = Probe(f"mqtt://{credentials}127.0.0.1:{port}?protocol=3.1.1", "intruder")
    try:
        assert intruder.connect().is_failure
    finally:
        intruder.close()


def test_a_device_may_use_only_its_own_topics(broker):
    gateway, device_a = probe(broker, GATEWAY_USER, "gw"), probe(broker, "cun-a")
    try:
        assert not gateway.connect().is_failure and not device_a.connect().is_failure
        assert not gateway.subscribe(f"{protocol.TOPIC_PREFIX}/#").is_failure
        # A cannot listen to B's commands, nor to anything but its own commands.
        assert device_a.subscribe(protocol.commands_topic("cun-b")).is_failure
        assert device_a.subscribe(protocol.EVENTS_WILDCARD).is_failure
        assert not device_a.subscribe(protocol.commands_topic("cun-a")).is_failure
        # A's publishes as B (a forged ack, presence, a command) go nowhere; MQTT 3.1.1
        # has no refusal code, so the gateway, subscribed to everything, hears none of them.
        for forged in (protocol.events_topic("cun-b"), protocol.status_topic("cun-b"),
                       protocol.commands_topic("cun-b"), protocol.commands_topic("cun-a")):
            device_a.publish(forged, b"forged")
        device_a.publish(protocol.events_topic("cun-a"), b"genuine")
        gateway.received(protocol.events_topic("cun-a"))
        time.sleep(0.2)
        assert gateway.messages == [(protocol.events_topic("cun-a"), b"genuine")]
        # The gateway may command any device; a device receives its own commands only.
        gateway.publish(protocol.commands_topic("cun-a"), b"play")
        device_a.received(protocol.commands_topic("cun-a"))
        assert device_a.messages == [(protocol.commands_topic("cun-a"), b"play")]
    finally:
        gateway.close()
        device_a.close()


def test_a_device_may_not_leave_a_last_will_on_another_devices_topic(broker):
    """amqtt publishes a will without asking the topic plugin: a forged offline for B."""
    impostor = probe(broker, "cun-a")
    impostor.client.will_set(protocol.status_topic("cun-b"), protocol.OFFLINE, qos=1, retain=True)
    honest = probe(broker, "cun-a", "cun-a-2")
    honest.client.will_set(protocol.status_topic("cun-a"), protocol.OFFLINE, qos=1, retain=True)
    try:
        assert impostor.connect().is_failure
        assert not honest.connect().is_failure
    finally:
        impostor.close()
        honest.close()


def test_as_its_own_process_it_takes_accounts_from_a_password_file(tmp_path):
    port = free_port()
    accounts = tmp_path / "passwords"
    accounts.write_text("# user:sha256-hex\n" + "".join(
        f"{user}:{hashlib.sha256(password.encode()).hexdigest()}\n"
        for user, password in PASSWORDS.items()))
    process = subprocess.Popen([sys.executable, "-m", "devices.broker", "--port", str(port),
                                "--passwords", str(accounts)],
                               cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()},
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().strip() == f"mqtt://127.0.0.1:{port}?protocol=3.1.1"
        for user, password, refused in ((GATEWAY_USER, "gw-secret", False), ("cun-a", "a-secret", False),
                                        ("cun-a", "b-secret", True), ("cun-c", "x", True)):
            client = Probe(f"mqtt://{user}:{password}@127.0.0.1:{port}?protocol=3.1.1", f"{user}-{refused}")
            try:
                assert client.connect().is_failure is refused, user
            finally:
                client.close()
    finally:
        process.terminate()
        process.wait(timeout=15)
