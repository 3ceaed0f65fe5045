"""Payloads as bytes: canonical JSON out, strict JSON in.

Every payload, command or ack, carries ``v``, the protocol version.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

PROTOCOL_VERSION = 1
#: The largest command payload a controller reads. The longest notice (headline, body and
#: instruction at their limits, in Chinese) signs to about 17 KB; anything near this
#: limit is not a command but an attempt to make the device parse or store a flood.
MAX_COMMAND_BYTES = 64 * 1024


def canonical_json(payload: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8 without escaping non-ASCII.

    Payloads hold only strings, integers, booleans and null, so this equals the
    RFC 8785 (JCS) serialisation and other languages can reproduce it.
    """
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


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
