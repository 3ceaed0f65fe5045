"""The controller's play queue: priority interrupts, a stop drops an announcement's plays."""
from __future__ import annotations

import threading

from devices.controller.playback import Playback
from tests.channels.loudspeaker_commands import play


class GatedPlayer:
    """Plays until the test releases it (or the play is cancelled)."""

    def __init__(self):
        self.started = []
        self.playing = threading.Event()
        self.release = threading.Event()

    def play(self, command, audio_path, cancelled):
        self.started.append(command["command_id"])
        self.playing.set()
        while not (self.release.is_set() or cancelled.is_set()):
            cancelled.wait(0.05)
        self.playing.clear()


class NoAudio:
    def fetch(self, command):
        return None


def test_higher_priority_interrupts_and_the_lower_one_plays_afterwards():
    player, reports, done = GatedPlayer(), [], threading.Event()

    def report(event, command, **extra):
        reports.append((event, command["command_id"]))
        if command["command_id"] == "routine":
            done.set()

    playback = Playback(player, NoAudio(), report)
    playback.start()
    try:
        playback.submit(play(command_id="routine", priority=3, sequence=1, now=4_000_000_000))
        assert player.playing.wait(5)
        playback.submit(play(command_id="flood", priority=9, sequence=2, now=4_000_000_000))
        player.release.set()
        assert done.wait(5)
    finally:
        playback.close()
    assert player.started == ["routine", "flood", "routine"]
    assert reports == [("played", "flood"), ("played", "routine")]


def test_cancel_drops_the_playing_and_queued_commands_of_an_announcement():
    player, reports = GatedPlayer(), []
    playback = Playback(player, NoAudio(), lambda event, command, **extra: reports.append(event))
    playback.start()
    try:
        playback.submit(play(command_id="first", sequence=1, now=4_000_000_000))
        assert player.playing.wait(5)
        playback.submit(play(command_id="second", sequence=2, now=4_000_000_000))
        dropped = playback.cancel(7)
    finally:
        playback.close()
    assert sorted(command["command_id"] for command in dropped) == ["first", "second"]
    assert reports == []


class Fetched:
    """Audio found for every part: its path names the part's hash."""

    def fetch(self, part):
        return f"/cache/{part['audio_sha256']}.audio"


class Recorder:
    def __init__(self):
        self.played = []

    def play(self, part, audio_path, cancelled):
        self.played.append((part.get("language"), audio_path))


def test_a_play_in_several_languages_plays_each_audio_in_turn_every_repeat():
    """#19, item 5: a Mandarin then Cantonese village hears both, in order, twice; one
    ``played`` ack for the whole command."""
    player, reports, done = Recorder(), [], threading.Event()

    def report(event, command, **extra):
        reports.append((event, command["command_id"]))
        done.set()

    playback = Playback(player, Fetched(), report)
    playback.start()
    try:
        playback.submit(play(command_id="two", repeat=2, now=4_000_000_000, followed_by=[
            {"language": "yue", "text": "粤语", "audio_url": "http://x/b.wav",
             "audio_sha256": "cd" * 32}]))
        assert done.wait(5)
    finally:
        playback.close()
    mandarin, cantonese = (None, f"/cache/{'ab' * 32}.audio"), ("yue", f"/cache/{'cd' * 32}.audio")
    assert player.played == [mandarin, cantonese, mandarin, cantonese]
    assert reports == [("played", "two")]
