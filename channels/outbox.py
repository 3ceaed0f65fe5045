"""The outbox: records what would have been sent, for channels with no provider.

Each message is one JSON line appended to a file. A single ``write`` of a line
opened for appending keeps concurrent workers' lines whole, so several worker
processes can share one outbox. Retention rewrites the file without its old lines
(``forget_before``): writers hold a shared lock on the file while appending, the
rewrite an exclusive one, and a writer that finds its file replaced meanwhile appends
to the new one, so no line is lost to the rewrite.
"""
from __future__ import annotations

import fcntl
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
        _append(self.path, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        return Receipt(provider_id=f"outbox-{message.delivery_id}", status="delivered")


def _append(path: str, line: bytes) -> None:
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if _is_current(fd, path):
                os.write(fd, line)
                return
        finally:
            os.close(fd)  # and its lock


def _is_current(fd: int, path: str) -> bool:
    """Whether ``fd`` is still the file at ``path`` (``forget_before`` replaces it)."""
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def forget_before(path: str, cutoff: datetime) -> int:
    """Delete the records made before ``cutoff`` (retention); returns how many went.

    The kept lines are written to a new file that replaces the outbox, under the outbox's
    exclusive lock; a line that cannot be read is kept."""
    if cutoff.tzinfo is None:
        raise ValueError("the cutoff needs a time zone, as the records' times have")
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _is_current(fd, path):
                return _rewrite_without_old(fd, path, cutoff)
        finally:
            os.close(fd)


def _rewrite_without_old(fd: int, path: str, cutoff: datetime) -> int:
    with open(fd, "rb", closefd=False) as handle:
        lines = handle.read().splitlines(keepends=True)
    kept = [line for line in lines if not _made_before(line, cutoff)]
    if len(kept) == len(lines):
        return 0
    fresh = f"{path}.retention"
    with open(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.writelines(kept)
        out.flush()
        os.fsync(out.fileno())
    os.replace(fresh, path)
    return len(lines) - len(kept)


def _made_before(line: bytes, cutoff: datetime) -> bool:
    try:
        made = datetime.fromisoformat(json.loads(line)["time"])
    except (ValueError, KeyError, TypeError):
        return False  # not a record this outbox wrote: kept for a person to look at
    return made.tzinfo is not None and made < cutoff


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
