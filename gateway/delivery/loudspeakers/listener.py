"""The listener: devices' acks and presence recorded as they arrive, and the periodic re-send."""
from __future__ import annotations

import logging
import queue
import signal
import threading
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import Engine

from channels.loudspeaker.acks import AckListener
from gateway.delivery import queues
from gateway.delivery.loudspeakers.acks import (
    CHANNEL,
    BatchToResend,
    apply_event,
    apply_presence,
    authentic,
    record_acks,
)
from gateway.delivery.loudspeakers.resend import resend_unacknowledged
from gateway.store.db import utcnow

log = logging.getLogger(__name__)

ACK_CLIENT_ID = "tongbao-acks"
RESEND_EVERY_SECONDS = 10.0
ACK_BATCH = 500


class Listening:
    """The ack listener and the periodic re-send, until ``stop``.

    Acks are handed from the MQTT network thread to a writer thread that
    records them in batches, one transaction each: recording one ack per
    transaction on the network thread fell behind 2,000 devices answering at
    once, and the broker dropped what queued up beyond its limit.
    """

    def __init__(self, app: Flask, client_id: str):
        if not app.config["MQTT_URL"]:
            raise RuntimeError("MQTT_URL is not set: there is no broker to listen on")
        self.app = app
        self.engine: Engine = app.extensions["engine"]
        self._listener = AckListener(app.config["MQTT_URL"], self._on_event,
                                     self._on_presence, client_id=client_id,
                                     on_resubscribed=self._broker_came_back)
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._reconnected_at: datetime | None = None
        self._events: queue.Queue = queue.Queue()
        self._resender = threading.Thread(target=self._resend_until_stopped,
                                          name="loudspeaker-resend", daemon=True)
        self._writer = threading.Thread(target=self._record_until_stopped,
                                        name="loudspeaker-acks", daemon=True)

    def start(self) -> None:
        self._writer.start()
        self._listener.start()
        self._resender.start()

    def stop(self, *, end_session: bool = False) -> None:
        self._listener.stop(end_session=end_session)
        self._stopped.set()
        self._wake.set()
        for thread in (self._resender, self._writer):
            if thread.is_alive():
                thread.join()

    @property
    def broker(self) -> str:
        return self._listener.address.safe_url()

    def _on_event(self, device_id: str, event: dict[str, Any]) -> None:
        self._events.put((device_id, event))

    def _record_until_stopped(self) -> None:
        while not (self._stopped.is_set() and self._events.empty()):
            try:
                batch = [self._events.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < ACK_BATCH:
                try:
                    batch.append(self._events.get_nowait())
                except queue.Empty:
                    break
            self._record(batch)

    def _record(self, batch: list) -> None:
        max_attempts = self.app.config["MAX_ATTEMPTS"]
        try:
            with self.engine.connect() as conn:
                batch = authentic(conn, batch)
        except Exception:
            # Unverified acks are never recorded; the re-send asks the devices again.
            log.exception("checking %d loudspeaker acks failed; dropped", len(batch))
            return
        try:
            with self.engine.begin() as conn:
                resends = record_acks(conn, batch, max_attempts=max_attempts)
        except Exception:
            # One bad ack must not lose the others: record them one by one.
            log.exception("recording %d loudspeaker acks together failed; one by one", len(batch))
            resends = [self._record_alone(device_id, event, max_attempts)
                       for device_id, event in batch]
        for resend in filter(None, resends):
            with self.app.app_context():
                queues.schedule_retry(resend.announcement_id, CHANNEL, resend.batch,
                                      self.app.config["RETRY_DELAY_SECONDS"])

    def _record_alone(self, device_id: str, event: dict[str, Any],
                      max_attempts: int) -> BatchToResend | None:
        try:
            return apply_event(self.engine, device_id, event, max_attempts=max_attempts)
        except Exception:
            log.exception("could not record ack %s from %s", event.get("event"), device_id)
            return None

    def _on_presence(self, device_id: str, online: bool) -> None:
        apply_presence(self.engine, device_id, online)

    def _broker_came_back(self) -> None:
        """Acks devices sent while we were away may be lost: ask for them again now."""
        self._reconnected_at = utcnow()
        self._wake.set()

    def _in_doubt_before(self, timeout: timedelta) -> datetime | None:
        """Plays last moved before this moment may have lost an ack to the broker's restart:
        those sent before it, and for one ack timeout after it, those whose send was still
        finishing (the job waits for the broker) or whose ``received`` came in meanwhile."""
        if self._reconnected_at is None:
            return None
        now = utcnow()
        if now > self._reconnected_at + 2 * timeout:
            self._reconnected_at = None
            return None
        return min(now, self._reconnected_at + timeout)

    def _resend_until_stopped(self) -> None:
        timeout = timedelta(seconds=self.app.config["LOUDSPEAKER_ACK_SECONDS"])
        while True:
            self._wake.wait(RESEND_EVERY_SECONDS)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                resend_unacknowledged(self.app, timeout,
                                      ask_all_sent_before=self._in_doubt_before(timeout))
            except Exception:
                # A database or Redis hiccup must not end the re-sending for good.
                log.exception("re-sending unacknowledged loudspeaker commands failed")


def listen(app: Flask, *, client_id: str = ACK_CLIENT_ID) -> Listening:
    """Start listening to the devices; call ``stop()`` on the result to end it.

    Only one listener per ``client_id`` may run (see ``AckListener``).
    """
    listening = Listening(app, client_id)
    listening.start()
    return listening


def listen_until_signalled(app: Flask) -> None:
    """``listen`` in the foreground until SIGTERM or Ctrl-C (call from the main thread)."""
    finished = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: finished.set())
    listening = listen(app)
    log.info("listening to loudspeakers on %s", listening.broker)
    finished.wait()
    listening.stop()
