"""Commands: their fields, the reasons a controller refuses one, and the checks it applies.

Sections 3 and 5 of ``docs/loudspeaker-protocol.md``.
"""
from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any, Mapping, Sequence

from channels.loudspeaker.protocol.wire import PROTOCOL_VERSION, canonical_json

# Reasons carried by a ``rejected`` ack.
MALFORMED = "malformed"
UNSUPPORTED = "unsupported"
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
STALE_SEQUENCE = "stale_sequence"
AUDIO_UNAVAILABLE = "audio_unavailable"
AUDIO_HASH_MISMATCH = "audio_hash_mismatch"
PLAYER_FAILED = "player_failed"
NO_AUDIO = "no_audio"  # text only, and this controller cannot speak text
#: Rejections a fresh command (new sequence, new expiry) may overcome; the rest
#: would be rejected again.
RETRYABLE_REASONS = frozenset({STALE_SEQUENCE, EXPIRED, AUDIO_UNAVAILABLE, PLAYER_FAILED})

PRIORITY_MIN, PRIORITY_MAX = 0, 9
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# JSON numbers above this lose precision in JavaScript and many embedded parsers.
_MAX_SAFE_INTEGER = 2**53 - 1


class CommandRejected(Exception):
    """A command the controller must not act on, with the reason it reports."""

    def __init__(self, reason: str, detail: str = "", command: Mapping[str, Any] | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.command = dict(command or {})


def new_command_id() -> str:
    return uuid.uuid4().hex


def play_command(*, command_id: str, announcement_id: int, text: str, audio_url: str | None,
                 audio_sha256: str | None, priority: int, repeat: int, sequence: int,
                 ttl_seconds: int, drill: bool, now: int | None = None,
                 followed_by: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A ``play``; ``followed_by``, the same notice in further languages played after it in
    turn (section 3), is left out of the command when empty, so a one-language command is
    what it always was."""
    issued_at = int(time.time()) if now is None else now
    command = {
        "v": PROTOCOL_VERSION, "type": "play", "command_id": command_id,
        "announcement_id": announcement_id, "text": text,
        "audio_url": audio_url, "audio_sha256": audio_sha256,
        "priority": priority, "repeat": repeat, "drill": drill,
        "issued_at": issued_at, "expires_at": issued_at + ttl_seconds, "sequence": sequence,
    }
    if followed_by:
        command["followed_by"] = [dict(part) for part in followed_by]
    return check_command(command)


def play_parts(command: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a ``play`` plays, in order, each part once per repeat: the command itself, then
    each of ``followed_by``; a part is the command with that part's text and audio."""
    return [dict(command)] + [{**command, **part} for part in command.get("followed_by", ())]


def stop_command(*, command_id: str, announcement_id: int, sequence: int, ttl_seconds: int,
                 now: int | None = None) -> dict[str, Any]:
    issued_at = int(time.time()) if now is None else now
    return check_command({
        "v": PROTOCOL_VERSION, "type": "stop", "command_id": command_id,
        "announcement_id": announcement_id,
        "issued_at": issued_at, "expires_at": issued_at + ttl_seconds, "sequence": sequence,
    })


_COMMON_FIELDS = {"v": int, "type": str, "command_id": str, "announcement_id": int,
                  "issued_at": int, "expires_at": int, "sequence": int}
_FIELDS = {
    "play": {**_COMMON_FIELDS, "text": str, "audio_url": (str, type(None)),
             "audio_sha256": (str, type(None)), "priority": int, "repeat": int, "drill": bool},
    "stop": dict(_COMMON_FIELDS),
}
#: Fields a command may leave out.
_OPTIONAL_FIELDS = {"play": {"followed_by": list}, "stop": {}}
#: One part of ``followed_by``: the notice in one more language.
_PART_FIELDS = {"language": str, "text": str, "audio_url": (str, type(None)),
                "audio_sha256": (str, type(None))}
#: A village plays at most this many languages in turn (the first and these).
MAX_FURTHER_PARTS = 7


def check_command(command: Mapping[str, Any]) -> dict[str, Any]:
    """The command if every field is present with the right type, else ``CommandRejected``."""
    if command.get("v") != PROTOCOL_VERSION:
        raise CommandRejected(UNSUPPORTED, f"protocol version {command.get('v')!r}", command)
    kind = command.get("type")
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise CommandRejected(UNSUPPORTED, f"command type {command.get('type')!r}", command)
    optional = _OPTIONAL_FIELDS[kind]
    _check_fields(command, fields, optional, command)
    if command["type"] == "play":
        _check_play(command)
    return dict(command)


def _check_fields(value: Mapping[str, Any], fields: Mapping[str, Any], optional: Mapping[str, Any],
                  command: Mapping[str, Any]) -> None:
    unknown = set(value) - set(fields) - set(optional) - {"signature"}
    if unknown:
        raise CommandRejected(MALFORMED, f"unknown fields {sorted(unknown)}", command)
    for name, kinds in (*fields.items(), *((n, k) for n, k in optional.items() if n in value)):
        found = value.get(name, ...)
        # bool is an int in Python; only "drill" may be a boolean.
        if found is ... or not isinstance(found, kinds) or (kinds is int and isinstance(found, bool)):
            raise CommandRejected(MALFORMED, f"field {name!r} missing or of the wrong type", command)
        if kinds is int and not 0 <= found <= _MAX_SAFE_INTEGER:
            raise CommandRejected(MALFORMED, f"field {name!r} out of range", command)


def _check_play(command: Mapping[str, Any]) -> None:
    if not PRIORITY_MIN <= command["priority"] <= PRIORITY_MAX:
        raise CommandRejected(MALFORMED, "priority must be 0-9", command)
    if command["repeat"] < 1:
        raise CommandRejected(MALFORMED, "repeat must be at least 1", command)
    parts = command.get("followed_by", [])
    if "followed_by" in command and not 0 < len(parts) <= MAX_FURTHER_PARTS:
        raise CommandRejected(MALFORMED, f"followed_by holds 1 to {MAX_FURTHER_PARTS} parts", command)
    for part in parts:
        if not isinstance(part, dict):
            raise CommandRejected(MALFORMED, "each part of followed_by is an object", command)
        _check_fields(part, _PART_FIELDS, {}, command)
        if "signature" in part:
            raise CommandRejected(MALFORMED, "unknown fields ['signature'] in a part", command)
    for part in (command, *parts):
        if part["audio_url"] is not None and (part["audio_sha256"] is None
                                              or not _SHA256_HEX.match(part["audio_sha256"])):
            raise CommandRejected(MALFORMED, "an audio_url needs its lowercase hex audio_sha256",
                                  command)


def check_fresh(command: Mapping[str, Any], now: float) -> None:
    if command["expires_at"] <= now:
        raise CommandRejected(EXPIRED, f"expired at {command['expires_at']}", command)


def check_sequence(command: Mapping[str, Any], last_sequence: int) -> None:
    if command["sequence"] <= last_sequence:
        raise CommandRejected(STALE_SEQUENCE,
                              f"sequence {command['sequence']} is not above {last_sequence}", command)


def content_digest(command: Mapping[str, Any]) -> str:
    """Identity of what a command asks for, ignoring when it was (re)issued.

    A QoS 1 redelivery and a gateway re-send of the same delivery share it, so
    the controller acknowledges them again instead of playing twice.
    """
    lasting = {key: value for key, value in command.items()
               if key not in ("sequence", "issued_at", "expires_at", "signature")}
    return hashlib.sha256(canonical_json(lasting)).hexdigest()
