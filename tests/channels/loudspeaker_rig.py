"""Loudspeakers end to end on a real broker, for tests: channel, ack listener and one controller.

Device ids are unique per rig, so parallel runs on the shared Mosquitto do not
collide; closing a rig clears the retained presence it left behind.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import threading
import time
import uuid

from channels.base import Outgoing
from channels.loudspeaker import protocol
from channels.loudspeaker.acks import AckListener
from channels.loudspeaker.channel import MqttLoudspeakerChannel
from channels.loudspeaker.protocol import transport
from devices.controller.client import Controller
from devices.controller.players import SinkPlayer, read_sink
from messages.render import Rendered

MOSQUITTO_URL = "mqtt://127.0.0.1:1883"
REDIS_URL = "redis://127.0.0.1:6379/0"
WAIT = 15  # seconds to wait for an event that should come
AUDIO = b"RIFF" + bytes(range(256)) * 64
AUDIO_SHA = hashlib.sha256(AUDIO).hexdigest()


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

    def wait_for(self, predicate):
        with self._changed:
            assert self._changed.wait_for(predicate, WAIT), self.acks

    def of(self, device_id, event):
        with self._changed:
            return [ack for device, ack in self.acks if device == device_id and ack["event"] == event]


@contextlib.contextmanager
def serve_audio(root):
    """The URL of a good ``notice.wav`` (``AUDIO``), served over HTTP from ``root``,
    beside a ``forged.wav`` that does not match ``AUDIO_SHA``."""
    (root / "notice.wav").write_bytes(AUDIO)
    (root / "forged.wav").write_bytes(AUDIO + b"x")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/notice.wav"
    finally:
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
    """Channel, ack listener and one in-process controller on one broker.

    ``mqtt_url`` is the gateway's; ``device_url(device_id, password)``, for a broker
    with an account per device, makes the controller's from ``device_password``.
    The controller signs its acks with ``ack_key``.
    """

    def __init__(self, tmp_path, mqtt_url, *, player=None, redis_url=REDIS_URL, device_url=None):
        self.tmp_path = tmp_path
        self.mqtt_url = mqtt_url
        self.device = unique_device()
        self.device_password = uuid.uuid4().hex
        self.ack_key = protocol.SigningKey.generate()
        self.channel = MqttLoudspeakerChannel({"mqtt_url": mqtt_url, "redis_url": redis_url,
                                               "signing_key_path": str(tmp_path / "gateway.pem")})
        self.key = self.channel.signing_key
        self.events = Events()
        self.listener = AckListener(mqtt_url, self.events.on_event, self.events.on_presence,
                                    client_id=f"acks-{self.device}")
        self.sink_dir = str(tmp_path / "sink")
        self.player = player or SinkPlayer(self.sink_dir)
        self.controller = Controller(
            self.device, device_url(self.device, self.device_password) if device_url else mqtt_url,
            [self.key.public_key], str(tmp_path / "state"), self.player, ack_key=self.ack_key)
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
