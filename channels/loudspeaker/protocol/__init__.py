"""The wire contract between the gateway and village loudspeaker controllers.

Everything both sides must agree on lives in this package, and every name of
it can be used from here (``protocol.verify``, ``protocol.commands_topic``):
``topics`` (where messages go), ``wire`` (payload bytes), ``commands`` (their
fields and the checks a controller applies before it plays anything),
``signing`` (what is signed and how it is verified), ``events`` (the acks a
controller sends back) and ``transport`` (broker URLs and MQTT sessions).
``docs/loudspeaker-protocol.md`` is the same contract in prose.

All but ``transport`` use only the standard library and ``cryptography``;
``transport`` adds paho-mqtt and is imported on its own
(``from channels.loudspeaker.protocol import transport``), so the reference
controller can run on a small board with nothing else installed.
"""
from channels.loudspeaker.protocol.commands import (
    AUDIO_HASH_MISMATCH,
    AUDIO_UNAVAILABLE,
    BAD_SIGNATURE,
    EXPIRED,
    MALFORMED,
    NO_AUDIO,
    PLAYER_FAILED,
    PRIORITY_MAX,
    PRIORITY_MIN,
    RETRYABLE_REASONS,
    STALE_SEQUENCE,
    UNSUPPORTED,
    CommandRejected,
    check_command,
    check_fresh,
    check_sequence,
    content_digest,
    new_command_id,
    play_command,
    play_parts,
    stop_command,
)
from channels.loudspeaker.protocol.events import PLAYED, RECEIVED, REJECTED, STOPPED, ack
from channels.loudspeaker.protocol.signing import (
    SigningKey,
    canonical_bytes,
    load_public_key,
    public_key_pem,
    verify,
    verify_ack,
)
from channels.loudspeaker.protocol.topics import (
    EVENTS_WILDCARD,
    OFFLINE,
    ONLINE,
    QOS,
    STATUS_WILDCARD,
    TOPIC_PREFIX,
    check_device_id,
    commands_topic,
    events_topic,
    split_topic,
    status_topic,
)
from channels.loudspeaker.protocol.wire import (
    MAX_COMMAND_BYTES,
    PROTOCOL_VERSION,
    canonical_json,
    decode_json,
    encode,
)

__all__ = [
    "AUDIO_HASH_MISMATCH", "AUDIO_UNAVAILABLE", "BAD_SIGNATURE", "EVENTS_WILDCARD", "EXPIRED",
    "MALFORMED", "MAX_COMMAND_BYTES", "NO_AUDIO", "OFFLINE", "ONLINE", "PLAYED", "PLAYER_FAILED", "PRIORITY_MAX",
    "PRIORITY_MIN", "PROTOCOL_VERSION", "QOS", "RECEIVED", "REJECTED", "RETRYABLE_REASONS",
    "STALE_SEQUENCE", "STATUS_WILDCARD", "STOPPED", "TOPIC_PREFIX", "UNSUPPORTED",
    "CommandRejected", "SigningKey", "ack", "canonical_bytes", "canonical_json", "check_command",
    "check_device_id", "check_fresh", "check_sequence", "commands_topic", "content_digest",
    "decode_json", "encode", "events_topic", "load_public_key", "new_command_id", "play_command",
    "play_parts", "public_key_pem", "split_topic", "status_topic", "stop_command", "verify", "verify_ack",
]
