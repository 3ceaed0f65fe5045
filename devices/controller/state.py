"""What the controller has accepted, kept on disk so replays stay refused across restarts."""
from __future__ import annotations

import json
import os
import tempfile
import threading
from typing import Any, Mapping

from channels.loudspeaker import protocol


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

    def accept(self, command: dict[str, Any], now: float) -> None:
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

    def pending_plays(self) -> list[dict[str, Any]]:
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
