"""Playing through an external program: audio files, text through a TTS program, failures, cancelling."""
from __future__ import annotations

import threading

import pytest

from channels.loudspeaker import protocol
from devices.controller.players import CommandPlayer
from tests.channels.loudspeaker_commands import play


def test_command_player_runs_the_program_on_the_audio_file(tmp_path):
    audio, heard = tmp_path / "a.wav", tmp_path / "heard.wav"
    audio.write_bytes(b"RIFF-sound")
    CommandPlayer(f"cp {{file}} {heard}").play(play(), str(audio), threading.Event())
    assert heard.read_bytes() == b"RIFF-sound"


def test_command_player_speaks_text_only_commands_through_the_tts_program(tmp_path):
    spoken = tmp_path / "spoken.txt"
    CommandPlayer("true", f"cp {{text_file}} {spoken}").play(
        play(audio_url=None, audio_sha256=None), None, threading.Event())
    assert spoken.read_text(encoding="utf-8") == "停水通知"


def test_command_player_without_tts_rejects_text_only_commands():
    with pytest.raises(protocol.CommandRejected) as rejected:
        CommandPlayer("true").play(play(audio_url=None, audio_sha256=None), None, threading.Event())
    assert rejected.value.reason == protocol.NO_AUDIO


def test_failing_player_is_reported(tmp_path):
    with pytest.raises(protocol.CommandRejected) as rejected:
        CommandPlayer("false {file}").play(play(), str(tmp_path), threading.Event())
    assert rejected.value.reason == protocol.PLAYER_FAILED


def test_cancelling_stops_the_player_program(tmp_path):
    cancelled = threading.Event()
    cancelled.set()  # e.g. a stop arrived just as the play began
    CommandPlayer("sh -c 'sleep 600' {file}").play(play(), str(tmp_path), cancelled)
