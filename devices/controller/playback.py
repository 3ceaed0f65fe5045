"""The controller's queue of plays: one at a time, by priority, each reported when done."""
from __future__ import annotations

import heapq
import threading
import time
from typing import Any, Callable

from channels.loudspeaker import protocol
from devices.controller.audio import AudioFetcher
from devices.controller.players import Player

Command = dict[str, Any]
Report = Callable[..., None]  # report(event, command, **extra)


class Playback:
    """Plays one command at a time, highest priority first, oldest first within one.

    A play of higher priority interrupts the current one, which goes back into
    the queue and starts again afterwards (if it has not expired by then).
    """

    def __init__(self, player: Player, fetcher: AudioFetcher, report: Report):
        self.player = player
        self.fetcher = fetcher
        self.report = report
        self._queue: list[tuple[int, int, Command]] = []
        self._current: Command | None = None
        self._cancelled = threading.Event()
        self._stopped_by_request = False
        self._changed = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="playback", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with self._changed:
            self._closing = True
            self._cancelled.set()
            self._changed.notify_all()
        self._thread.join(timeout=15)

    def submit(self, command: Command) -> None:
        with self._changed:
            heapq.heappush(self._queue, (-command["priority"], command["sequence"], command))
            if self._current is not None and command["priority"] > self._current["priority"]:
                self._cancelled.set()
            self._changed.notify_all()

    def cancel(self, announcement_id: int) -> list[Command]:
        """Drop every queued or playing command of an announcement; the ones dropped."""
        with self._changed:
            dropped = [item[2] for item in self._queue if item[2]["announcement_id"] == announcement_id]
            self._queue = [item for item in self._queue if item[2]["announcement_id"] != announcement_id]
            heapq.heapify(self._queue)
            if self._current is not None and self._current["announcement_id"] == announcement_id:
                dropped.append(self._current)
                self._stopped_by_request = True
                self._cancelled.set()
            return dropped

    def _run(self) -> None:
        while True:
            command = self._next()
            if command is None:
                return
            self._play(command)

    def _next(self) -> Command | None:
        with self._changed:
            while not self._queue and not self._closing:
                self._changed.wait()
            if self._closing:
                return None
            self._current = heapq.heappop(self._queue)[2]
            self._cancelled.clear()
            self._stopped_by_request = False
            return self._current

    def _play(self, command: Command) -> None:
        try:
            protocol.check_fresh(command, time.time())
            # Every language's audio is fetched and checked before any plays: a village hears
            # all of the notice's languages or, rejected, none.
            parts = [(part, self.fetcher.fetch(part)) for part in protocol.play_parts(command)]
            for _ in range(command["repeat"]):
                for part, audio_path in parts:
                    if self._cancelled.is_set():
                        break
                    self.player.play(part, audio_path, self._cancelled)
        except protocol.CommandRejected as rejection:
            self._finish()
            self.report(protocol.REJECTED, command, reason=rejection.reason, detail=rejection.detail)
            return
        outcome = self._finish()
        if outcome == "played":
            self.report(protocol.PLAYED, command)

    def _finish(self) -> str:
        """Decide, under the lock, what became of the current play."""
        with self._changed:
            command, self._current = self._current, None
            if self._stopped_by_request or self._closing:
                return "dropped"  # the stop was acknowledged by whoever cancelled it
            if self._cancelled.is_set():
                heapq.heappush(self._queue, (-command["priority"], command["sequence"], command))
                return "preempted"
            return "played"
