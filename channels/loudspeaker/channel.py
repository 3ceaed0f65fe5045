"""Village loudspeakers (村村响) driven over MQTT with signed commands.

One delivery is one device: ``Outgoing.address`` is the device id. ``send``
publishes a signed ``play`` command and returns once the broker has taken it
(PUBACK); ``send_many`` publishes a whole batch and then collects the
PUBACKs, so a batch costs one round trip, not one per device. Whether the
village heard it arrives later as a ``played`` ack (see
``channels.loudspeaker.acks``).

Settings:

``mqtt_url`` (required)
    ``mqtt://user:password@host:port``, ``mqtts://...``; ``?protocol=3.1.1``
    for a broker without MQTT 5 (the embedded one).
``signing_key_path`` (required)
    Ed25519 private key in PEM; generated (mode 0600) if the file is absent.
``redis_url``
    Source of per-device sequence numbers shared by all worker processes.
    Without it, each process counts on its own from the clock (fine for one
    worker; concurrent processes may then collide and see ``stale_sequence``).
``command_ttl_seconds`` (3600), ``publish_timeout_seconds`` (10),
``default_priority`` (5), ``default_repeat`` (1), ``max_inflight`` (1000).

From ``rendered.data``: ``audio_url`` and ``audio_sha256`` (lowercase hex; a
URL without its hash is refused, because a controller could not check the
audio), ``drill``, and optionally ``priority`` (0-9), ``repeat`` and
``followed_by`` (the notice in further languages, each part with its
``language``, ``text``, ``audio_url`` and ``audio_sha256``, played in turn).
"""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Any, Callable, Mapping, Sequence

import paho.mqtt.client as mqtt

from channels.base import Channel, ChannelError, Outgoing, Receipt
from channels.loudspeaker import protocol
from channels.loudspeaker.protocol import transport


class ClockSequence:
    """Per-process sequence numbers: never below the current time in µs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}

    def next(self, device_id: str) -> int:
        with self._lock:
            value = max(self._last.get(device_id, 0) + 1, time.time_ns() // 1_000)
            self._last[device_id] = value
            return value

    def next_many(self, device_ids: Sequence[str]) -> list[int]:
        return [self.next(device_id) for device_id in device_ids]


class RedisSequence:
    """Per-device sequence numbers shared by every worker through Redis.

    Redis here keeps nothing across restarts, so each number is also at least
    Redis's clock in microseconds: after a restart the count resumes above
    anything sent before, instead of at 1 (which every device would reject).
    Microseconds, not milliseconds, because a burst of commands to one device
    can outrun a millisecond clock, and losing the key right after such a
    burst would then go backwards. (2**53 µs is reached in the year 2255.)
    """

    KEY = "tongbao:speaker-seq:{device_id}"
    # INCR, then lift to the clock if behind; TIME keeps one clock for all workers.
    SCRIPT = """
local value = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
if value < now_us then
  redis.call('SET', KEYS[1], now_us)
  value = now_us
end
return value
"""

    def __init__(self, redis_url: str):
        import redis  # only the gateway side needs it, never the controller

        self._client = redis.Redis.from_url(redis_url, socket_timeout=5)
        self._script = self._client.register_script(self.SCRIPT)

    def next(self, device_id: str) -> int:
        return int(self._script(keys=[self.KEY.format(device_id=device_id)]))

    def next_many(self, device_ids: Sequence[str]) -> list[int]:
        """One number per device, in one round trip to Redis."""
        pipeline = self._client.pipeline(transaction=False)
        for device_id in device_ids:
            self._script(keys=[self.KEY.format(device_id=device_id)], client=pipeline)
        return [int(value) for value in pipeline.execute()]


class CommandPublisher:
    """One connected paho client that publishes QoS 1 and waits for PUBACK."""

    def __init__(self, address: transport.BrokerAddress, *, timeout: float, max_inflight: int):
        self.address = address
        self.timeout = timeout
        self._connected = transport.ConnectedSignal()
        self._lock = threading.Lock()
        self._refusals: dict[int, str] = {}
        client_id = f"tongbao-gw-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._client = transport.new_client(address, client_id)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._started = False

    def publish(self, topic: str, payload: bytes, expiry_seconds: int) -> None:
        self.wait(self.start(topic, payload, expiry_seconds))

    def start(self, topic: str, payload: bytes, expiry_seconds: int) -> mqtt.MQTTMessageInfo:
        """Hand a command to the network thread; ``wait`` for its PUBACK later."""
        self._ensure_connected()
        return self._client.publish(topic, payload, qos=protocol.QOS, retain=False,
                                    properties=transport.expiry_properties(self.address, expiry_seconds))

    def wait(self, info: mqtt.MQTTMessageInfo) -> None:
        try:
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as error:
            raise ChannelError(f"broker did not take the command: {error}", code="mqtt_publish") from None
        if not info.is_published():
            raise ChannelError(f"no PUBACK within {self.timeout}s", code="mqtt_timeout")
        refusal = self._refusals.pop(info.mid, None)
        if refusal:
            # An MQTT 5 broker refusing a publish (e.g. "Not authorized") is a
            # configuration problem; retrying later may succeed once fixed.
            raise ChannelError(f"broker refused the command: {refusal}", code="mqtt_refused")

    def close(self) -> None:
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False

    def _ensure_connected(self) -> None:
        with self._lock:
            if not self._started:
                try:
                    transport.start(self._client, self.address)
                except OSError as error:
                    raise ChannelError(f"cannot reach broker {self.address.safe_url()}: {error}",
                                       code="mqtt_unreachable") from None
                self._started = True
        if not self._connected.wait(self.timeout):
            refusal = self._connected.last_refusal or "no CONNACK"
            raise ChannelError(f"not connected to {self.address.safe_url()}: {refusal}",
                               code="mqtt_unreachable")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.connected(reason_code)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.disconnected()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refusals[mid] = str(reason_code)


class MqttLoudspeakerChannel(Channel):
    name = "loudspeaker"
    rate_per_second = 200.0
    personal = False

    def __init__(self, settings: Mapping[str, Any] | None = None):
        super().__init__(settings)
        self.address = transport.BrokerAddress.parse(self.settings["mqtt_url"])
        self.signing_key = protocol.SigningKey.load_or_create(self.settings["signing_key_path"])
        self.ttl_seconds = int(self.settings.get("command_ttl_seconds", 3600))
        self.default_priority = int(self.settings.get("default_priority", 5))
        self.default_repeat = int(self.settings.get("default_repeat", 1))
        redis_url = self.settings.get("redis_url")
        self.sequences = RedisSequence(redis_url) if redis_url else ClockSequence()
        self.publisher = CommandPublisher(
            self.address, timeout=float(self.settings.get("publish_timeout_seconds", 10)),
            max_inflight=int(self.settings.get("max_inflight", 1000)))

    def send(self, message: Outgoing) -> Receipt:
        device_id = self._device_id(message.address)
        return self._finish(*self._start(message, self.sequences.next(device_id)))

    def send_many(self, messages: Sequence[Outgoing],
                  pace: Callable[[], None]) -> list[Receipt | ChannelError]:
        """Publish every command, then collect the PUBACKs: one round trip for many sends."""
        in_flight: list = [_attempt(self._device_id, message.address) for message in messages]
        sequences = iter(self.sequences.next_many(
            [device_id for device_id in in_flight if not isinstance(device_id, ChannelError)]))
        for index, message in enumerate(messages):
            if not isinstance(in_flight[index], ChannelError):
                pace()
                in_flight[index] = _attempt(self._start, message, next(sequences))
        return [item if isinstance(item, ChannelError) else _attempt(self._finish, *item)
                for item in in_flight]

    def _start(self, message: Outgoing, sequence: int) -> tuple[dict, mqtt.MQTTMessageInfo]:
        data = message.rendered.data
        try:
            command = protocol.play_command(
                command_id=self.command_id(message), announcement_id=message.announcement_id,
                text=message.rendered.text,
                audio_url=data.get("audio_url"), audio_sha256=data.get("audio_sha256"),
                priority=int(data.get("priority", self.default_priority)),
                repeat=int(data.get("repeat", self.default_repeat)),
                drill=bool(data.get("drill", False)),
                sequence=sequence, ttl_seconds=self.ttl_seconds,
                followed_by=data.get("followed_by", ()))
        except protocol.CommandRejected as error:
            raise ChannelError(f"cannot build the play command: {error}", permanent=True,
                               code=error.reason) from None
        return command, self.publisher.start(*self._signed(message.address, command))

    def _finish(self, command: dict, info: mqtt.MQTTMessageInfo) -> Receipt:
        self.publisher.wait(info)
        return Receipt(provider_id=command["command_id"], status="sent",
                       detail=f"sequence {command['sequence']}")

    def stop(self, device_id: str, announcement_id: int) -> str:
        """Ask a device to stop (or never start) playing an announcement; the stop's id."""
        device_id = self._device_id(device_id)
        command = protocol.stop_command(command_id=protocol.new_command_id(),
                                        announcement_id=announcement_id,
                                        sequence=self.sequences.next(device_id),
                                        ttl_seconds=self.ttl_seconds)
        self.publisher.publish(*self._signed(device_id, command))
        return command["command_id"]

    def close(self) -> None:
        self.publisher.close()

    @staticmethod
    def command_id(message: Outgoing) -> str:
        """Stable per delivery, so a re-send is recognised by the device and not played twice."""
        return f"a{message.announcement_id}-d{message.delivery_id}"

    def _signed(self, device_id: str, command: Mapping[str, Any]) -> tuple[str, bytes, int]:
        """Topic, signed payload and remaining lifetime of a command."""
        topic = protocol.commands_topic(device_id)
        signed = self.signing_key.sign(topic, command)
        return topic, protocol.encode(signed), command["expires_at"] - int(time.time())

    @staticmethod
    def _device_id(address: str) -> str:
        try:
            return protocol.check_device_id(address)
        except ValueError as error:
            raise ChannelError(str(error), permanent=True, code="bad_device_id") from None


def _attempt(step: Callable, *arguments):
    """What ``step`` returns, or the ChannelError it raised: one bad send must not stop a batch."""
    try:
        return step(*arguments)
    except ChannelError as error:
        return error
