"""The outbox: records what would have been sent, for channels with no provider.

Each message is one JSON line appended to a file. A single ``write`` of a line
opened for appending keeps concurrent workers' lines whole, so several worker
processes can share one outbox.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping

from channels.base import Channel, Outgoing, Receipt


class OutboxChannel(Channel):
    name = "outbox"
    rate_per_second = 1000.0

    def __init__(self, settings: Mapping[str, Any] | None = None):
        super().__init__(settings)
        self.path = self.settings["path"]
        self.channel = self.settings.get("channel", "outbox")
        # Phones and texts of residents: the owner's alone (a folder made here is 0700).
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)

    def send(self, message: Outgoing) -> Receipt:
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "channel": self.channel,
            "delivery_id": message.delivery_id,
            "announcement_id": message.announcement_id,
            "address": message.address,
            "language": message.rendered.language,
            "text": message.rendered.text,
        }
        if message.rendered.data.get("audio_url"):
            record["audio_url"] = message.rendered.data["audio_url"]
        if message.rendered.data.get("followed_by"):  # a loudspeaker's further languages
            record["followed_by"] = list(message.rendered.data["followed_by"])
        line = json.dumps(record, ensure_ascii=False) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
        return Receipt(provider_id=f"outbox-{message.delivery_id}", status="delivered")


def read(path: str, *, announcement_id: int | None = None, channel: str | None = None,
         offset: int = 0, limit: int = 100) -> tuple[list[dict], int]:
    """A page of recorded messages (newest last) and how many match in all."""
    matching = [record for record in _records(path)
                if (announcement_id is None or record["announcement_id"] == announcement_id)
                and (channel is None or record["channel"] == channel)]
    return matching[offset:offset + limit], len(matching)


def _records(path: str) -> Iterator[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)
    except FileNotFoundError:
        return
