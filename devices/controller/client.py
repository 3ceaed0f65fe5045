"""The controller's MQTT client: commands in, verified and deduplicated; acks and presence out."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from channels.loudspeaker import protocol
from channels.loudspeaker.protocol import transport
from devices.controller.audio import AudioFetcher
from devices.controller.playback import Command, Playback
from devices.controller.players import Player
from devices.controller.state import ControllerState

log = logging.getLogger("tongbao.speaker")


class Controller:
    """One loudspeaker's controller: acts only on verified, fresh, new commands and reports each outcome."""

    def __init__(self, device_id: str, mqtt_url: str, public_keys: Sequence[Ed25519PublicKey],
                 state_dir: str, player: Player, *, ack_key: protocol.SigningKey,
                 fetch_timeout: float = 30.0, max_command_bytes: int = protocol.MAX_COMMAND_BYTES):
        self.device_id = protocol.check_device_id(device_id)
        self.address = transport.BrokerAddress.parse(mqtt_url)
        self.public_keys = list(public_keys)
        self.ack_key = ack_key  # signs every ack; the gateway holds its public half
        self.max_command_bytes = max_command_bytes
        self.state = ControllerState(state_dir)
        self.playback = Playback(player, AudioFetcher(os.path.join(state_dir, "audio"),
                                                      timeout=fetch_timeout), self._report)
        self.commands_topic = protocol.commands_topic(device_id)
        self._ready = threading.Event()
        self._connected = transport.ConnectedSignal()
        self._client = transport.new_client(self.address, f"tongbao-speaker-{device_id}", persistent=True)
        self._client.will_set(protocol.status_topic(device_id), protocol.OFFLINE, qos=protocol.QOS, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def start(self, timeout: float = 10.0) -> None:
        """Resume unfinished plays, connect, announce ``online`` and subscribe."""
        for command in self.state.pending_plays():
            self.playback.submit(command)
        self.playback.start()
        # Packet = payload + topic + header: a little room above the payload limit.
        transport.start(self._client, self.address, persistent=True,
                        maximum_packet_size=self.max_command_bytes + 1024)
        if not self._ready.wait(timeout):
            raise ConnectionError(f"controller {self.device_id} not subscribed on "
                                  f"{self.address.safe_url()}: {self._connected.last_refusal or 'timeout'}")

    def stop(self) -> None:
        """Clean shutdown: say ``offline`` ourselves, since no last will follows a clean disconnect."""
        self.playback.close()
        if self._connected.is_set():
            info = self._client.publish(protocol.status_topic(self.device_id), protocol.OFFLINE,
                                        qos=protocol.QOS, retain=True)
            info.wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()

    def handle(self, raw: bytes) -> None:
        """Act on one message from the commands topic."""
        if len(raw) > self.max_command_bytes:
            # Before parsing, verifying or storing anything: a flood costs its reading only.
            log.warning("refused a payload of %d bytes (limit %d)", len(raw), self.max_command_bytes)
            self._publish_ack(protocol.ack(protocol.REJECTED, {}, reason=protocol.MALFORMED,
                                           detail=f"payload over {self.max_command_bytes} bytes"))
            return
        try:
            command = protocol.verify(self.commands_topic, raw, self.public_keys)
            earlier = self.state.duplicate_of(command)
            if earlier is not None:
                self._ack_duplicate(command, earlier)
                return
            now = time.time()
            protocol.check_fresh(command, now)
            protocol.check_sequence(command, self.state.last_sequence)
        except protocol.CommandRejected as rejection:
            log.warning("rejected command: %s", rejection)
            self._publish_ack(protocol.ack(protocol.REJECTED, rejection.command,
                                           reason=rejection.reason, detail=rejection.detail))
            return
        self.state.accept(command, now)
        self._report(protocol.RECEIVED, command)
        if command["type"] == "play":
            self.playback.submit(command)
        else:
            self._stop_announcement(command)

    def _stop_announcement(self, stop: Command) -> None:
        for cancelled in self.playback.cancel(stop["announcement_id"]):
            self._report(protocol.STOPPED, cancelled, stop_command_id=stop["command_id"])

    def _ack_duplicate(self, command: Command, earlier: dict[str, Any]) -> None:
        last = earlier["last_ack"] or protocol.ack(protocol.RECEIVED, command)
        self._publish_ack({**last, "duplicate": True})

    def _report(self, event: str, command: Mapping[str, Any], **extra: Any) -> None:
        ack = protocol.ack(event, command, **extra)
        finished = event != protocol.RECEIVED or command["type"] == "stop"
        self.state.record_ack(command["command_id"], ack, finished=finished)
        self._publish_ack(ack)

    def _publish_ack(self, ack: Mapping[str, Any]) -> None:
        """Sign with the device's ack key (the gateway refuses unsigned acks) and publish."""
        topic = protocol.events_topic(self.device_id)
        unsigned = {key: value for key, value in ack.items() if key != "signature"}
        self._client.publish(topic, protocol.encode(self.ack_key.sign(topic, unsigned)),
                             qos=protocol.QOS, retain=False)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._connected.connected(reason_code):
            log.error("broker refused the connection: %s", reason_code)
            return
        client.publish(protocol.status_topic(self.device_id), protocol.ONLINE, qos=protocol.QOS, retain=True)
        client.subscribe(self.commands_topic, qos=protocol.QOS)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.disconnected()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(code.is_failure for code in reason_codes):
            log.error("broker refused the subscription to %s", self.commands_topic)
            return
        self._ready.set()

    def _on_message(self, client, userdata, message) -> None:
        # paho's network thread dies on an exception; keep the speaker listening.
        try:
            self.handle(message.payload)
        except Exception:
            log.exception("failed to handle a command")
