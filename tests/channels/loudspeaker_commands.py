"""A sample loudspeaker play command for tests, any field overridable."""
from __future__ import annotations

from channels.loudspeaker import protocol

NOW = 1_760_000_000
SHA = "ab" * 32


def play(**overrides):
    fields = dict(command_id="a7-d1", announcement_id=7, text="停水通知", audio_url="http://x/a.wav",
                  audio_sha256=SHA, priority=5, repeat=1, sequence=100, ttl_seconds=3600,
                  drill=False, now=NOW)
    fields.update(overrides)
    return protocol.play_command(**fields)
