"""The controller's memory of accepted commands: replays refused, unfinished plays resumed."""
from __future__ import annotations

from channels.loudspeaker import protocol
from devices.controller.state import ControllerState
from tests.channels.loudspeaker_commands import NOW, play


def test_last_sequence_survives_a_restart(tmp_path):
    ControllerState(str(tmp_path)).accept(play(sequence=500), NOW)
    assert ControllerState(str(tmp_path)).last_sequence == 500


def test_reissued_command_is_a_duplicate_but_changed_content_is_not(tmp_path):
    state = ControllerState(str(tmp_path))
    state.accept(play(sequence=500), NOW)
    assert state.duplicate_of(play(sequence=900, now=NOW + 60)) is not None
    assert state.duplicate_of(play(sequence=900, text="另一条通知")) is None


def test_expired_commands_are_forgotten_and_unfinished_plays_resume(tmp_path):
    state = ControllerState(str(tmp_path))
    state.accept(play(command_id="old", sequence=1, ttl_seconds=10), NOW)
    state.accept(play(command_id="new", sequence=2), NOW + 20)
    resumed = ControllerState(str(tmp_path))
    assert set(resumed.commands) == {"new"}
    assert [command["command_id"] for command in resumed.pending_plays()] == ["new"]
    resumed.record_ack("new", protocol.ack(protocol.PLAYED, play()), finished=True)
    assert ControllerState(str(tmp_path)).pending_plays() == []
