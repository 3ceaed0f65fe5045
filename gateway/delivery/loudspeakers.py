"""The gateway's side of the village loudspeakers: acks into the ledger, presence, re-sends, stop.

The channel (``channels.loudspeaker.channel``) publishes one signed ``play`` per
delivery, with the command id ``a<announcement>-d<delivery>``; what devices say
back arrives through ``channels.loudspeaker.acks.AckListener``, which ``listen``
runs with the callbacks below:

    received → delivered      played → confirmed
    stopped  → status kept, the stop noted in last_error
    rejected → failed with the reason, or (for a reason a fresh command may
               overcome) planned again and retried, up to MAX_ATTEMPTS sends

A play no device has acknowledged within ``LOUDSPEAKER_ACK_SECONDS`` is sent
again, up to ``MAX_ATTEMPTS`` sends, and then fails. See the "Gateway side"
section of ``docs/loudspeaker-protocol.md``.
"""
from __future__ import annotations

import logging
import queue
import re
import signal
import threading
from datetime import timedelta
from typing import Any, NamedTuple

from flask import Flask, current_app
from sqlalchemy import Connection, Engine, case, select, update

from channels.base import ChannelError
from channels.loudspeaker import acks, protocol
from gateway.delivery import lifecycle, providers, queues
from gateway.store import ledger
from gateway.store.db import utcnow
from gateway.store.schema import announcements, areas, deliveries, devices

log = logging.getLogger(__name__)

CHANNEL = "loudspeaker"
ACK_CLIENT_ID = "tongbao-acks"
RESEND_EVERY_SECONDS = 10.0
ACK_BATCH = 500
# A received play may wait behind others and last minutes (repeats): give it this many
# acknowledgement timeouts before asking again.
PLAY_WAIT_FACTOR = 10
NO_ACK = "no acknowledgement from the device"
_COMMAND_ID = re.compile(r"a(\d+)-d(\d+)")
_ACKED_STATUS = {protocol.RECEIVED: "delivered", protocol.PLAYED: "confirmed"}
# Where a device may still answer for a play: handed to the broker, or received but not played.
_OUT_WITH_DEVICE = ("sending", "sent", "delivered")


class BatchToResend(NamedTuple):
    announcement_id: int
    batch: int


# --- acks and presence ------------------------------------------------------

def apply_event(engine: Engine, device_id: str, event: dict[str, Any], *,
                max_attempts: int) -> BatchToResend | None:
    """Record one device ack in the ledger, in a transaction of its own."""
    with engine.begin() as conn:
        return record_event(conn, device_id, event, max_attempts=max_attempts)


def record_event(conn: Connection, device_id: str, event: dict[str, Any], *,
                 max_attempts: int) -> BatchToResend | None:
    """Record one device ack in the ledger within the caller's transaction.

    Returns the batch to queue again after a retryable rejection (the caller
    queues it; the reconciler would find it otherwise). Acks for unknown
    commands, for another device's delivery, and repeats change nothing.
    """
    delivery = _acked_delivery(conn, device_id, event.get("command_id"))
    if delivery is None:
        return None
    kind = event["event"]
    if kind in _ACKED_STATUS:
        ledger.transition(conn, delivery.id, _ACKED_STATUS[kind])
    elif kind == protocol.STOPPED:
        _note(conn, delivery.id, f"stopped on the device by stop {event.get('stop_command_id')}")
    elif kind == protocol.REJECTED:
        return _rejected(conn, delivery, event, max_attempts)
    return None


def record_acks(conn: Connection, events: list[tuple[str, dict[str, Any]]], *,
                max_attempts: int) -> list[BatchToResend]:
    """Record many device acks within the caller's transaction; what ``record_event`` does for each.

    ``received`` and ``played`` (nearly all of them) move their rows together in
    a few statements, so a thousand villages answering at once hold the
    database for milliseconds, not seconds; the rare others go one by one.
    """
    targets: dict[tuple[int, int, str], str] = {}
    resends = []
    for device_id, event in events:
        ids = parse_command_id(event.get("command_id"))
        new = _ACKED_STATUS.get(event.get("event"))
        if ids is None or new is None:
            resends.append(record_event(conn, device_id, event, max_attempts=max_attempts))
            continue
        key = (*ids, device_id)
        if key not in targets or ledger.may_move(targets[key], new):
            targets[key] = new
    addressed = {(row.announcement_id, row.id, row.address) for row in conn.execute(
        select(deliveries.c.announcement_id, deliveries.c.id, deliveries.c.address)
        .where(deliveries.c.id.in_({delivery_id for _, delivery_id, _ in targets}),
               deliveries.c.channel == CHANNEL))}
    ledger.advance(conn, {delivery_id: new for (announcement_id, delivery_id, device_id), new
                          in targets.items() if (announcement_id, delivery_id, device_id) in addressed})
    return [resend for resend in resends if resend]


def apply_presence(engine: Engine, device_id: str, online: bool) -> None:
    """Record a device's presence; unknown devices are ignored.

    ``last_seen`` is the last moment the device was known to be connected: now
    when it comes online or drops, unchanged when an ``offline`` it already had
    is heard again (the retained status replayed to a restarted listener).
    """
    now = utcnow()
    seen = now if online else case((devices.c.online.is_(True), now), else_=devices.c.last_seen)
    with engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.device_id == device_id)
                     .values(online=online, last_seen=seen))


def parse_command_id(command_id: Any) -> tuple[int, int] | None:
    """``(announcement_id, delivery_id)`` from ``a<announcement>-d<delivery>``, else ``None``."""
    match = _COMMAND_ID.fullmatch(command_id) if isinstance(command_id, str) else None
    return (int(match[1]), int(match[2])) if match else None


def _acked_delivery(conn: Connection, device_id: str, command_id: Any):
    """The loudspeaker delivery a command id names, if it was addressed to this device."""
    ids = parse_command_id(command_id)
    if ids is None:
        return None
    announcement_id, delivery_id = ids
    this_delivery = (deliveries.c.id == delivery_id, deliveries.c.announcement_id == announcement_id,
                     deliveries.c.channel == CHANNEL, deliveries.c.address == device_id)
    # A device often answers while the send job is still recording its batch as
    # sent. Writing to the row first holds it (and on SQLite, where FOR UPDATE
    # does nothing, the database) until the ack is applied: otherwise the ack's
    # status change or the job's would be lost.
    conn.execute(update(deliveries).where(*this_delivery)
                 .values(updated_at=deliveries.c.updated_at))
    return conn.execute(select(deliveries).where(*this_delivery)).first()


def _rejected(conn: Connection, delivery, event: dict[str, Any],
              max_attempts: int) -> BatchToResend | None:
    # A delivery already settled or already planned again has had this answer.
    if delivery.status not in _OUT_WITH_DEVICE:
        return None
    reason = f"rejected by the device: {event.get('reason')}"
    if event.get("detail"):
        reason += f" ({event['detail']})"
    if acks.is_retryable(event):
        if delivery.attempts < max_attempts:
            ledger.reschedule(conn, delivery.announcement_id, CHANNEL, [delivery.id], reason,
                              from_status=delivery.status)
            return BatchToResend(delivery.announcement_id, delivery.batch)
        reason = f"gave up after {delivery.attempts} tries: {reason}"
    _fail(conn, delivery, reason)
    return None


def _fail(conn: Connection, delivery, reason: str) -> None:
    if delivery.status == "delivered":
        # A device can refuse a play after receiving it (audio hash mismatch, no
        # audio). The ledger moves delivered rows only forward, so the row is put
        # back and failed within this one transaction.
        ledger.reschedule(conn, delivery.announcement_id, CHANNEL, [delivery.id], reason,
                          from_status="delivered")
    ledger.transition(conn, delivery.id, "failed", error=reason)


def _note(conn: Connection, delivery_id: int, text: str) -> None:
    """Keep what a device said about a delivery without changing its status."""
    conn.execute(update(deliveries).where(deliveries.c.id == delivery_id)
                 .values(last_error=text[:deliveries.c.last_error.type.length]))


# --- re-sending and stopping --------------------------------------------------

def resend_unacknowledged(app: Flask, older_than: timedelta) -> dict[str, int]:
    """Send again the plays still ``sent`` (no ``received``) after ``older_than``,
    and those ``received`` but not ``played`` after ``PLAY_WAIT_FACTOR`` times that
    (a lost ``played`` ack must not leave a village shown as not yet heard).

    Each delivery is sent at most ``MAX_ATTEMPTS`` times; an unacknowledged one
    then fails, a received one stays received. The device recognises a re-sent
    command by its id: it acknowledges again and does not play it twice.
    """
    max_attempts = app.config["MAX_ATTEMPTS"]
    now = utcnow()
    with app.extensions["engine"].begin() as conn:
        silent = _waiting(conn, "sent", now - older_than)
        unplayed = [row for row in _waiting(conn, "delivered", now - older_than * PLAY_WAIT_FACTOR)
                    if row.attempts < max_attempts]
        again: dict[tuple[int, str], list] = {}
        for row in silent:
            if row.attempts < max_attempts:
                again.setdefault((row.announcement_id, "sent"), []).append(row)
            else:
                ledger.transition(conn, row.id, "failed",
                                  error=f"{NO_ACK} after {row.attempts} sends")
        for row in unplayed:
            again.setdefault((row.announcement_id, "delivered"), []).append(row)
        for (announcement_id, status), rows in again.items():
            ledger.reschedule(conn, announcement_id, CHANNEL, [row.id for row in rows],
                              f"no '{'received' if status == 'sent' else 'played'}' ack; sent again",
                              from_status=status)
    with app.app_context():
        for (announcement_id, _), rows in again.items():
            _queue_batches(announcement_id, {row.batch for row in rows})
    resent = sum(map(len, again.values()))
    return {"resent": resent, "failed": len(silent) + len(unplayed) - resent}


def _waiting(conn: Connection, status: str, since):
    """Loudspeaker deliveries of live announcements left in ``status`` since before ``since``."""
    return conn.execute(
        select(deliveries.c.id, deliveries.c.announcement_id, deliveries.c.batch,
               deliveries.c.attempts)
        .join(announcements, announcements.c.id == deliveries.c.announcement_id)
        .where(deliveries.c.channel == CHANNEL, deliveries.c.status == status,
               deliveries.c.updated_at < since,
               announcements.c.state.in_(lifecycle.LIVE_STATES))).all()


def _queue_batches(announcement_id: int, batches: set[int]) -> None:
    # A batch with a live job is left to it; one that is already running when
    # rows are planned again leaves them to the reconciler.
    idle = [batch for batch in sorted(batches)
            if not queues.batch_has_live_job(announcement_id, CHANNEL, batch)]
    queues.enqueue_batches(announcement_id, CHANNEL, idle)


def stop_everywhere(app: Flask, announcement_id: int) -> int:
    """Send ``stop`` to every device that may be playing or holding the announcement.

    Returns how many devices were told. Raises ``ChannelError`` naming the
    devices the broker did not take a stop for, after trying them all.
    """
    if providers.configured_provider(app.config, CHANNEL) is None:
        return 0  # the outbox stands in for loudspeakers: nothing plays anywhere
    with app.extensions["engine"].connect() as conn:
        device_ids = conn.execute(select(deliveries.c.address).where(
            deliveries.c.announcement_id == announcement_id, deliveries.c.channel == CHANNEL,
            deliveries.c.status.in_(_OUT_WITH_DEVICE))).scalars().all()
    if not device_ids:
        return 0
    failures = []
    with app.app_context():
        channel = providers.sender(CHANNEL)
        for device_id in device_ids:
            try:
                channel.stop(device_id, announcement_id)
            except ChannelError as error:
                failures.append(f"{device_id}: {error}")
    if failures:
        raise ChannelError(f"stop for announcement {announcement_id} not sent to "
                           f"{len(failures)} of {len(device_ids)} devices: " + "; ".join(failures))
    return len(device_ids)


def stop_loudspeakers_job(announcement_id: int) -> int:
    """The rq job queued after a cancel."""
    return stop_everywhere(current_app._get_current_object(), announcement_id)


# --- the listener -------------------------------------------------------------

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
        self._listener = acks.AckListener(app.config["MQTT_URL"], self._on_event,
                                          self._on_presence, client_id=client_id)
        self._stopped = threading.Event()
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

    def _resend_until_stopped(self) -> None:
        timeout = timedelta(seconds=self.app.config["LOUDSPEAKER_ACK_SECONDS"])
        while not self._stopped.wait(RESEND_EVERY_SECONDS):
            try:
                resend_unacknowledged(self.app, timeout)
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


# --- coverage -----------------------------------------------------------------

def coverage(conn: Connection, announcement_id: int) -> list[dict[str, Any]]:
    """Per village the announcement's loudspeakers are in: how many played it, which are offline.

    A village is ``reached`` once one of its devices has played the notice; an
    offline device plays nothing, so a village with only offline devices is not.
    """
    rows = conn.execute(
        select(devices.c.area_code, areas.c.name, devices.c.device_id, devices.c.online,
               deliveries.c.status)
        .join(devices, devices.c.id == deliveries.c.recipient_id)
        .join(areas, areas.c.code == devices.c.area_code, isouter=True)
        .where(deliveries.c.announcement_id == announcement_id, deliveries.c.channel == CHANNEL)
        .order_by(devices.c.area_code, devices.c.device_id)).all()
    villages: dict[str, dict[str, Any]] = {}
    for row in rows:
        village = villages.setdefault(row.area_code, {
            "area_code": row.area_code, "name": row.name, "devices": 0, "played": 0,
            "offline": [], "reached": False})
        village["devices"] += 1
        if row.status == "confirmed":
            village["played"] += 1
            village["reached"] = True
        if row.online is False:
            village["offline"].append(row.device_id)
    return list(villages.values())
