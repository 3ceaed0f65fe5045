"""What makes the sound: an external program, or a file sink for tests and demos."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import threading
import time
from typing import Any, Mapping, Protocol

from channels.loudspeaker import protocol
from devices.controller.audio import file_sha256


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
                  "language": command.get("language"),
                  "audio_sha256": file_sha256(audio_path) if audio_path else None,
                  "drill": command["drill"]}
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_sink(directory: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(directory, "played.jsonl"), encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []
