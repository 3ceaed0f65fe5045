"""The wire contract between the gateway and village loudspeaker controllers.

Everything both sides must agree on lives here: topics, command and ack
payloads, the canonical bytes that are signed, and the checks a controller
applies before it plays anything. ``docs/loudspeaker-protocol.md`` is the same
contract in prose.

This module uses only the standard library and ``cryptography``, so the
reference controller can run on a small board with nothing else installed.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
import uuid
from typing import Any, Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PROTOCOL_VERSION = 1
TOPIC_PREFIX = "tongbao/v1/speakers"
EVENTS_WILDCARD = f"{TOPIC_PREFIX}/+/events"
STATUS_WILDCARD = f"{TOPIC_PREFIX}/+/status"
ONLINE = "online"
OFFLINE = "offline"
QOS = 1

# Ack events a controller publishes.
RECEIVED = "received"
PLAYED = "played"
REJECTED = "rejected"
STOPPED = "stopped"

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
_DEVICE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
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


# --- topics ---------------------------------------------------------------

def check_device_id(device_id: str) -> str:
    """Device ids become topic levels: no wildcards, no slashes."""
    if not isinstance(device_id, str) or not _DEVICE_ID.match(device_id):
        raise ValueError(f"invalid device id {device_id!r}: use 1-64 of A-Z a-z 0-9 . _ -")
    return device_id


def commands_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{check_device_id(device_id)}/commands"


def events_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{check_device_id(device_id)}/events"


def status_topic(device_id: str) -> str:
    return f"{TOPIC_PREFIX}/{check_device_id(device_id)}/status"


def split_topic(topic: str) -> tuple[str, str] | None:
    """``(device_id, kind)`` for a speaker topic, ``None`` for anything else."""
    prefix = TOPIC_PREFIX + "/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    if len(parts) != 2 or not _DEVICE_ID.match(parts[0]):
        return None
    return parts[0], parts[1]


# --- canonical form and signatures ------------------------------------------

def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8 without escaping non-ASCII.

    Payloads hold only strings, integers, booleans and null, so this equals the
    RFC 8785 (JCS) serialisation and other languages can reproduce it.
    """
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def canonical_bytes(topic: str, payload: Mapping[str, Any]) -> bytes:
    """What is signed: the topic, a newline, the payload without ``signature``.

    Signing the topic binds a command to one device: a command copied onto
    another device's topic no longer verifies.
    """
    unsigned = {key: value for key, value in payload.items() if key != "signature"}
    return topic.encode("utf-8") + b"\n" + canonical_json(unsigned)


class SigningKey:
    """The gateway's Ed25519 private key, kept in a PEM file."""

    def __init__(self, private_key: Ed25519PrivateKey):
        self._private_key = private_key

    @classmethod
    def load_or_create(cls, path: str) -> "SigningKey":
        """Load the key at ``path``; on first use generate it (mode 0600)."""
        try:
            with open(path, "rb") as handle:
                return cls.from_pem(handle.read())
        except FileNotFoundError:
            return cls._create(path)

    @classmethod
    def from_pem(cls, pem: bytes) -> "SigningKey":
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("signing key is not an Ed25519 private key")
        return cls(key)

    @classmethod
    def _create(cls, path: str) -> "SigningKey":
        # Written to a private temporary file, then hard-linked into place: two
        # workers starting together end up sharing whichever key linked first.
        candidate = cls(Ed25519PrivateKey.generate())
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        temporary = f"{path}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(candidate.private_pem())
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
        with open(path, "rb") as handle:
            return cls.from_pem(handle.read())

    def private_pem(self) -> bytes:
        return self._private_key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._private_key.public_key()

    def public_pem(self) -> str:
        return public_key_pem(self.public_key)

    def public_base64(self) -> str:
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def sign(self, topic: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The payload with its ``signature`` (standard base64 of 64 bytes) added."""
        signature = self._private_key.sign(canonical_bytes(topic, payload))
        return {**payload, "signature": base64.b64encode(signature).decode("ascii")}


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key(text: str | bytes) -> Ed25519PublicKey:
    """A public key from PEM, or from the base64 of its 32 raw bytes."""
    data = text.encode("ascii") if isinstance(text, str) else text
    if b"-----BEGIN" in data:
        key = serialization.load_pem_public_key(data)
    else:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


# --- commands ---------------------------------------------------------------

def new_command_id() -> str:
    return uuid.uuid4().hex


def play_command(*, command_id: str, announcement_id: int, text: str, audio_url: str | None,
                 audio_sha256: str | None, priority: int, repeat: int, sequence: int,
                 ttl_seconds: int, drill: bool, now: int | None = None) -> dict[str, Any]:
    issued_at = int(time.time()) if now is None else now
    return check_command({
        "v": PROTOCOL_VERSION, "type": "play", "command_id": command_id,
        "announcement_id": announcement_id, "text": text,
        "audio_url": audio_url, "audio_sha256": audio_sha256,
        "priority": priority, "repeat": repeat, "drill": drill,
        "issued_at": issued_at, "expires_at": issued_at + ttl_seconds, "sequence": sequence,
    })


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


def check_command(command: Mapping[str, Any]) -> dict[str, Any]:
    """The command if every field is present with the right type, else ``CommandRejected``."""
    if command.get("v") != PROTOCOL_VERSION:
        raise CommandRejected(UNSUPPORTED, f"protocol version {command.get('v')!r}", command)
    kind = command.get("type")
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise CommandRejected(UNSUPPORTED, f"command type {command.get('type')!r}", command)
    unknown = set(command) - set(fields) - {"signature"}
    if unknown:
        raise CommandRejected(MALFORMED, f"unknown fields {sorted(unknown)}", command)
    for name, kinds in fields.items():
        value = command.get(name, ...)
        # bool is an int in Python; only "drill" may be a boolean.
        if value is ... or not isinstance(value, kinds) or (kinds is int and isinstance(value, bool)):
            raise CommandRejected(MALFORMED, f"field {name!r} missing or of the wrong type", command)
        if kinds is int and not 0 <= value <= _MAX_SAFE_INTEGER:
            raise CommandRejected(MALFORMED, f"field {name!r} out of range", command)
    if command["type"] == "play":
        _check_play(command)
    return dict(command)


def _check_play(command: Mapping[str, Any]) -> None:
    if not PRIORITY_MIN <= command["priority"] <= PRIORITY_MAX:
        raise CommandRejected(MALFORMED, "priority must be 0-9", command)
    if command["repeat"] < 1:
        raise CommandRejected(MALFORMED, "repeat must be at least 1", command)
    if command["audio_url"] is not None and (command["audio_sha256"] is None
                                             or not _SHA256_HEX.match(command["audio_sha256"])):
        raise CommandRejected(MALFORMED, "an audio_url needs its lowercase hex audio_sha256", command)


def encode(payload: Mapping[str, Any]) -> bytes:
    """The bytes published on the wire (canonical, so they are also what was signed)."""
    return canonical_json(payload)


def decode_json(raw: bytes) -> dict[str, Any]:
    """Strict JSON: one object, no duplicate keys, no floats or NaN."""
    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(pairs)

    def no_float(text: str) -> Any:
        raise ValueError(f"floating-point number {text}")

    value = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys, parse_float=no_float,
                       parse_constant=no_float)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def verify(topic: str, raw: bytes, public_keys: Iterable[Ed25519PublicKey]) -> dict[str, Any]:
    """The verified, well-formed command published on ``topic``.

    Raises ``CommandRejected`` (``malformed``, ``bad_signature`` or
    ``unsupported``); the rejection keeps whatever could be read of the command
    so the controller can still name it in its ack.
    """
    try:
        payload = decode_json(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise CommandRejected(MALFORMED, str(error)) from None
    try:
        signature = base64.b64decode(payload.get("signature", ""), validate=True)
    except (TypeError, ValueError):
        raise CommandRejected(BAD_SIGNATURE, "signature is not base64", payload) from None
    signed = canonical_bytes(topic, payload)
    for key in public_keys:
        try:
            key.verify(signature, signed)
        except InvalidSignature:
            continue
        return check_command(payload)
    raise CommandRejected(BAD_SIGNATURE, "no trusted key verifies this command", payload)


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


# --- acks -------------------------------------------------------------------

def ack(event: str, command: Mapping[str, Any], now: int | None = None, **extra: Any) -> dict[str, Any]:
    """An event about ``command``: always its id, sequence and announcement."""
    return {
        "v": PROTOCOL_VERSION, "event": event,
        "command_id": command.get("command_id"), "sequence": command.get("sequence"),
        "announcement_id": command.get("announcement_id"),
        "at": int(time.time()) if now is None else now,
        **extra,
    }
