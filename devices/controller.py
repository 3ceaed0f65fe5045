"""The reference loudspeaker controller: what runs on the board beside the amplifier.

    python -m devices.controller --device-id cun-01 \\
        --mqtt-url mqtt://cun-01:secret@broker:1883 --public-key gateway.pub \\
        --state-dir /var/lib/tongbao-speaker --player "aplay -q {file}"

It needs only paho-mqtt, cryptography and the standard library. It acts on a
command only if the gateway's signature verifies, it has not expired, and its
sequence is above every sequence accepted before (kept on disk, so a restart
does not reopen old commands). A command it already accepted, redelivered by
the broker or re-sent by the gateway, is acknowledged again and not replayed.
See ``docs/loudspeaker-protocol.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import logging
import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Mapping, Protocol, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from channels.loudspeaker import protocol
from channels.loudspeaker.protocol import transport

log = logging.getLogger("tongbao.speaker")

Command = dict[str, Any]
Report = Callable[..., None]  # report(event, command, **extra)


# --- persistent state -------------------------------------------------------

class ControllerState:
    """The last accepted sequence and the commands still worth remembering.

    A command is remembered until it expires: after that its replay is refused
    as expired anyway. Plays not yet finished keep their command, so a restart
    resumes them.
    """

    def __init__(self, state_dir: str):
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, "state.json")
        self.last_sequence = 0
        self.commands: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._load()

    def duplicate_of(self, command: Mapping[str, Any]) -> dict[str, Any] | None:
        """The remembered entry if this command was accepted before, else ``None``."""
        with self._lock:
            entry = self.commands.get(command["command_id"])
            if entry and entry["digest"] == protocol.content_digest(command):
                return dict(entry)
            return None

    def accept(self, command: Command, now: float) -> None:
        with self._lock:
            self.last_sequence = command["sequence"]
            self.commands[command["command_id"]] = {
                "digest": protocol.content_digest(command), "expires_at": command["expires_at"],
                "last_ack": None, "pending": command if command["type"] == "play" else None,
            }
            self._forget_expired(now)
            self._save()

    def record_ack(self, command_id: str, ack: dict[str, Any], *, finished: bool) -> None:
        with self._lock:
            entry = self.commands.get(command_id)
            if entry is None:
                return
            entry["last_ack"] = ack
            if finished:
                entry["pending"] = None
            self._save()

    def pending_plays(self) -> list[Command]:
        with self._lock:
            return [entry["pending"] for entry in self.commands.values() if entry["pending"]]

    def _forget_expired(self, now: float) -> None:
        self.commands = {command_id: entry for command_id, entry in self.commands.items()
                         if entry["expires_at"] > now}

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                saved = json.load(handle)
        except FileNotFoundError:
            return
        self.last_sequence = saved["last_sequence"]
        self.commands = saved["commands"]

    def _save(self) -> None:
        # Written and fsynced before any ack goes out: a crash must never let a
        # replayed command through because the accepted sequence was lost.
        data = json.dumps({"last_sequence": self.last_sequence, "commands": self.commands},
                          ensure_ascii=False).encode("utf-8")
        descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(self.path), suffix=".tmp")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


# --- audio ------------------------------------------------------------------

class AudioFetcher:
    """Downloads a command's audio once and keeps it only if its SHA-256 matches."""

    def __init__(self, cache_dir: str, *, timeout: float = 30.0, max_bytes: int = 100 * 2**20):
        os.makedirs(cache_dir, exist_ok=True)
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.max_bytes = max_bytes

    def fetch(self, command: Mapping[str, Any]) -> str | None:
        """The local path of the verified audio, ``None`` for a text-only command."""
        url, expected = command["audio_url"], command["audio_sha256"]
        if url is None:
            return None
        path = os.path.join(self.cache_dir, f"{expected}.audio")
        if os.path.exists(path) and _file_sha256(path) == expected:
            return path
        if not url.startswith(("http://", "https://")):
            raise protocol.CommandRejected(protocol.AUDIO_UNAVAILABLE, "audio_url must be http(s)", command)
        body = self._download(url, command)
        if hashlib.sha256(body).hexdigest() != expected:
            raise protocol.CommandRejected(protocol.AUDIO_HASH_MISMATCH,
                                           "downloaded audio does not match audio_sha256", command)
        descriptor, temporary = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(body)
        os.replace(temporary, path)
        return path

    def _download(self, url: str, command: Mapping[str, Any]) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = response.read(self.max_bytes + 1)
        except (urllib.error.URLError, OSError) as error:
            raise protocol.CommandRejected(protocol.AUDIO_UNAVAILABLE, str(error), command) from None
        if len(body) > self.max_bytes:
            raise protocol.CommandRejected(protocol.AUDIO_UNAVAILABLE, "audio too large", command)
        return body


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


# --- players ----------------------------------------------------------------

class Player(Protocol):
    def play(self, command: Mapping[str, Any], audio_path: str | None,
             cancelled: threading.Event) -> None:
        """Play once; return early when ``cancelled`` is set; raise ``CommandRejected`` on failure."""


class CommandPlayer:
    """Plays through an external program, e.g. ``aplay -q {file}``.

    ``tts_template`` (with ``{text_file}``) speaks text-only commands; without
    it they are rejected as ``no_audio``. ``max_seconds`` bounds a stuck player.
    """

    def __init__(self, template: str, tts_template: str | None = None, *, max_seconds: float = 1800):
        self.template = template
        self.tts_template = tts_template
        self.max_seconds = max_seconds

    def play(self, command: Mapping[str, Any], audio_path: str | None,
             cancelled: threading.Event) -> None:
        if audio_path is not None:
            self._run(self.template.format(file=shlex.quote(audio_path)), command, cancelled)
            return
        if self.tts_template is None:
            raise protocol.CommandRejected(protocol.NO_AUDIO, "no audio and no --tts command", command)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt") as text_file:
            text_file.write(command["text"])
            text_file.flush()
            self._run(self.tts_template.format(text_file=shlex.quote(text_file.name)), command, cancelled)

    def _run(self, command_line: str, command: Mapping[str, Any], cancelled: threading.Event) -> None:
        try:
            process = subprocess.Popen(shlex.split(command_line))
        except OSError as error:
            raise protocol.CommandRejected(protocol.PLAYER_FAILED, str(error), command) from None
        deadline = time.monotonic() + self.max_seconds
        while process.poll() is None and not cancelled.is_set() and time.monotonic() < deadline:
            cancelled.wait(0.2)
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
            if not cancelled.is_set():
                raise protocol.CommandRejected(protocol.PLAYER_FAILED, "player ran too long", command)
        elif process.returncode != 0 and not cancelled.is_set():
            raise protocol.CommandRejected(protocol.PLAYER_FAILED,
                                           f"player exited with {process.returncode}", command)


class SinkPlayer:
    """Writes what it "plays" to ``<dir>/played.jsonl``, for tests and demos.

    Each play takes ``seconds`` (or until cancelled), like real audio would, so
    stop and priority can be exercised.
    """

    def __init__(self, directory: str, seconds: float = 0.0):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "played.jsonl")
        self.seconds = seconds
        self._lock = threading.Lock()

    def play(self, command: Mapping[str, Any], audio_path: str | None,
             cancelled: threading.Event) -> None:
        self._write("started", command, audio_path)
        interrupted = cancelled.wait(self.seconds) if self.seconds else cancelled.is_set()
        self._write("interrupted" if interrupted else "finished", command, audio_path)

    def _write(self, what: str, command: Mapping[str, Any], audio_path: str | None) -> None:
        record = {"what": what, "command_id": command["command_id"],
                  "announcement_id": command["announcement_id"], "text": command["text"],
                  "audio_sha256": _file_sha256(audio_path) if audio_path else None,
                  "drill": command["drill"]}
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_sink(directory: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(directory, "played.jsonl"), encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []


# --- playback ---------------------------------------------------------------

class Playback:
    """Plays one command at a time, highest priority first, oldest first within one.

    A play of higher priority interrupts the current one, which goes back into
    the queue and starts again afterwards (if it has not expired by then).
    """

    def __init__(self, player: Player, fetcher: AudioFetcher, report: Report):
        self.player = player
        self.fetcher = fetcher
        self.report = report
        self._queue: list[tuple[int, int, Command]] = []
        self._current: Command | None = None
        self._cancelled = threading.Event()
        self._stopped_by_request = False
        self._changed = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="playback", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with self._changed:
            self._closing = True
            self._cancelled.set()
            self._changed.notify_all()
        self._thread.join(timeout=15)

    def submit(self, command: Command) -> None:
        with self._changed:
            heapq.heappush(self._queue, (-command["priority"], command["sequence"], command))
            if self._current is not None and command["priority"] > self._current["priority"]:
                self._cancelled.set()
            self._changed.notify_all()

    def cancel(self, announcement_id: int) -> list[Command]:
        """Drop every queued or playing command of an announcement; the ones dropped."""
        with self._changed:
            dropped = [item[2] for item in self._queue if item[2]["announcement_id"] == announcement_id]
            self._queue = [item for item in self._queue if item[2]["announcement_id"] != announcement_id]
            heapq.heapify(self._queue)
            if self._current is not None and self._current["announcement_id"] == announcement_id:
                dropped.append(self._current)
                self._stopped_by_request = True
                self._cancelled.set()
            return dropped

    def _run(self) -> None:
        while True:
            command = self._next()
            if command is None:
                return
            self._play(command)

    def _next(self) -> Command | None:
        with self._changed:
            while not self._queue and not self._closing:
                self._changed.wait()
            if self._closing:
                return None
            self._current = heapq.heappop(self._queue)[2]
            self._cancelled.clear()
            self._stopped_by_request = False
            return self._current

    def _play(self, command: Command) -> None:
        try:
            protocol.check_fresh(command, time.time())
            audio_path = self.fetcher.fetch(command)
            for _ in range(command["repeat"]):
                if self._cancelled.is_set():
                    break
                self.player.play(command, audio_path, self._cancelled)
        except protocol.CommandRejected as rejection:
            self._finish()
            self.report(protocol.REJECTED, command, reason=rejection.reason, detail=rejection.detail)
            return
        outcome = self._finish()
        if outcome == "played":
            self.report(protocol.PLAYED, command)

    def _finish(self) -> str:
        """Decide, under the lock, what became of the current play."""
        with self._changed:
            command, self._current = self._current, None
            if self._stopped_by_request or self._closing:
                return "dropped"  # the stop was acknowledged by whoever cancelled it
            if self._cancelled.is_set():
                heapq.heappush(self._queue, (-command["priority"], command["sequence"], command))
                return "preempted"
            return "played"


# --- the controller ---------------------------------------------------------

class Controller:
    def __init__(self, device_id: str, mqtt_url: str, public_keys: Sequence[Ed25519PublicKey],
                 state_dir: str, player: Player, *, fetch_timeout: float = 30.0):
        self.device_id = protocol.check_device_id(device_id)
        self.address = transport.BrokerAddress.parse(mqtt_url)
        self.public_keys = list(public_keys)
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
        transport.start(self._client, self.address, persistent=True)
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
        self._client.publish(protocol.events_topic(self.device_id), protocol.encode(ack),
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


# --- command line -----------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devices.controller",
                                     description="Tongbao reference loudspeaker controller")
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--mqtt-url", default=os.environ.get("TONGBAO_MQTT_URL"),
                        help="mqtt[s]://user:password@host:port (or env TONGBAO_MQTT_URL, "
                             "which keeps the password out of the process list)")
    parser.add_argument("--public-key", action="append", required=True,
                        help="gateway public key file (PEM or base64); repeat during a key rotation")
    parser.add_argument("--state-dir", required=True)
    output = parser.add_mutually_exclusive_group(required=True)
    output.add_argument("--player", help='command playing a file, e.g. "aplay -q {file}"')
    output.add_argument("--sink-dir", help="write what would be played to DIR/played.jsonl")
    parser.add_argument("--tts", help='command speaking a text-only command, e.g. "espeak-ng -f {text_file}"')
    parser.add_argument("--sink-seconds", type=float, default=0.0, help="how long each sink play lasts")
    parser.add_argument("--fetch-timeout", type=float, default=30.0)
    parser.add_argument("--max-play-seconds", type=float, default=1800.0)
    args = parser.parse_args(argv)
    if not args.mqtt_url:
        parser.error("--mqtt-url or TONGBAO_MQTT_URL is required")
    return args


def build(args: argparse.Namespace) -> Controller:
    keys = []
    for path in args.public_key:
        with open(path, "rb") as handle:
            keys.append(protocol.load_public_key(handle.read()))
    if args.sink_dir:
        player: Player = SinkPlayer(args.sink_dir, args.sink_seconds)
    else:
        player = CommandPlayer(args.player, args.tts, max_seconds=args.max_play_seconds)
    return Controller(args.device_id, args.mqtt_url, keys, args.state_dir, player,
                      fetch_timeout=args.fetch_timeout)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    controller = build(parse_args(argv))
    finished = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: finished.set())
    controller.start()
    log.info("controller %s listening on %s", controller.device_id, controller.commands_topic)
    finished.wait()
    controller.stop()


if __name__ == "__main__":
    main()
