"""The example Mosquitto hardening of ``docs/mosquitto/``, on a second Mosquitto of this machine."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from channels.loudspeaker import protocol
from channels.loudspeaker.protocol import transport
from devices.broker import free_port
from tests.channels.loudspeaker_rig import WAIT

pytestmark = pytest.mark.integration

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


def test_example_mosquitto_does_not_forward_an_oversized_payload(hardened_broker):
    flooder = Probe(hardened_broker("tongbao-gateway"), "gw-flood")
    gateway = Probe(hardened_broker("tongbao-gateway"), "gw")
    device_a = Probe(hardened_broker("cun-a"), "cun-a")
    dropped = threading.Event()
    flooder.client.on_disconnect = lambda *args: dropped.set()
    try:
        for probe in (flooder, gateway, device_a):
            assert not probe.connect().is_failure
        own = protocol.commands_topic("cun-a")
        assert not device_a.subscribe(own).is_failure
        # Mosquitto 2.0 drops the connection of a client publishing over message_size_limit.
        flooder.client.publish(own, b"x" * (protocol.MAX_COMMAND_BYTES + 1), qos=1)
        assert dropped.wait(WAIT)
        assert not gateway.publish(own, b"y" * protocol.MAX_COMMAND_BYTES).is_failure
        device_a.received(own)
        assert [len(payload) for _, payload in device_a.messages] == [protocol.MAX_COMMAND_BYTES]
    finally:
        for probe in (flooder, gateway, device_a):
            probe.close()
