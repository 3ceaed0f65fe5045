"""What a controller reports about a command: its acks.

Section 6 of ``docs/loudspeaker-protocol.md``.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from channels.loudspeaker.protocol.wire import PROTOCOL_VERSION

RECEIVED = "received"
PLAYED = "played"
REJECTED = "rejected"
STOPPED = "stopped"


def ack(event: str, command: Mapping[str, Any], now: int | None = None, **extra: Any) -> dict[str, Any]:
    """An event about ``command``: always its id, sequence and announcement."""
    return {
        "v": PROTOCOL_VERSION, "event": event,
        "command_id": command.get("command_id"), "sequence": command.get("sequence"),
        "announcement_id": command.get("announcement_id"),
        "at": int(time.time()) if now is None else now,
        **extra,
    }
