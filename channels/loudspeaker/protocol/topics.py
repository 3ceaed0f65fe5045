"""Where the gateway and the controllers publish: topics, device ids, QoS and presence.

Section 2 of ``docs/loudspeaker-protocol.md``.
"""
from __future__ import annotations

import re

TOPIC_PREFIX = "tongbao/v1/speakers"
EVENTS_WILDCARD = f"{TOPIC_PREFIX}/+/events"
STATUS_WILDCARD = f"{TOPIC_PREFIX}/+/status"
# What a controller keeps, retained, on its status topic.
ONLINE = "online"
OFFLINE = "offline"
QOS = 1

_DEVICE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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
