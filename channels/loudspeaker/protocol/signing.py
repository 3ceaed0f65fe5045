"""Ed25519 signatures: what is signed, the gateway's key on commands, a device's key on acks.

Sections 4 and 6 of ``docs/loudspeaker-protocol.md``. Commands are signed with
the gateway's key and checked by controllers (``verify``); acks are signed with
the device's own key (its "ack key", made by ``speakers add``) and checked by
the gateway (``verify_ack``). Both sign the same bytes, ``canonical_bytes``.
"""
from __future__ import annotations

import base64
import os
import uuid
from typing import Any, Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from channels.loudspeaker.protocol.commands import (
    BAD_SIGNATURE,
    MALFORMED,
    CommandRejected,
    check_command,
)
from channels.loudspeaker.protocol.wire import canonical_json, decode_json


def canonical_bytes(topic: str, payload: Mapping[str, Any]) -> bytes:
    """What is signed: the topic, a newline, the payload without ``signature``.

    Signing the topic binds a command to one device: a command copied onto
    another device's topic no longer verifies.
    """
    unsigned = {key: value for key, value in payload.items() if key != "signature"}
    return topic.encode("utf-8") + b"\n" + canonical_json(unsigned)


class SigningKey:
    """An Ed25519 private key: the gateway's (a PEM file), or a device's ack key (base64 seed)."""

    def __init__(self, private_key: Ed25519PrivateKey):
        self._private_key = private_key

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_text(cls, text: str | bytes) -> "SigningKey":
        """A key from PEM, or from the base64 of its 32-byte seed (how ack keys are printed)."""
        data = text.encode("ascii") if isinstance(text, str) else text
        if b"-----BEGIN" in data:
            return cls.from_pem(data)
        seed = base64.b64decode(data.strip(), validate=True)
        if len(seed) != 32:
            raise ValueError("an Ed25519 key seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

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

    def private_base64(self) -> str:
        """The 32-byte seed in base64: one line to give a device as its ack key."""
        raw = self._private_key.private_bytes(serialization.Encoding.Raw,
                                              serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption())
        return base64.b64encode(raw).decode("ascii")

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


def verify_ack(topic: str, ack: Mapping[str, Any], public_key: Ed25519PublicKey) -> bool:
    """Whether ``ack``, as read from ``topic`` (the device's events topic), carries a
    ``signature`` of the device's ack key over it."""
    try:
        signature = base64.b64decode(ack.get("signature", ""), validate=True)
        public_key.verify(signature, canonical_bytes(topic, ack))
    except (TypeError, ValueError, InvalidSignature):
        return False
    return True
