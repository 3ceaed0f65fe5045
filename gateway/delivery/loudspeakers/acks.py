"""What devices say back, into the ledger: acks move deliveries, presence marks devices.

    received → delivered      played → confirmed
    stopped  → status kept, the stop noted in last_error
    rejected → failed with the reason, or (for a reason a fresh command may
               overcome) planned again and retried, up to MAX_ATTEMPTS sends

Only acks signed with the device's own ack key count (``authentic``): one
that does not verify, or from a device with no ack key (registered before
keys existed, until ``speakers rekey``), is refused and logged.
"""
from __future__ import annotations

import binascii
import logging
import re
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, case, select, update

from channels.loudspeaker import protocol
from channels.loudspeaker.acks import is_retryable
from gateway.store import ledger, roster
from gateway.store.db import utcnow
from gateway.store.schema import deliveries, devices

log = logging.getLogger(__name__)

CHANNEL = "loudspeaker"
_COMMAND_ID = re.compile(r"a(\d+)-d(\d+)")
_ACKED_STATUS = {protocol.RECEIVED: "delivered", protocol.PLAYED: "confirmed"}
# Where a device may still answer for a play: handed to the broker, or received but not played.
OUT_WITH_DEVICE = ("sending", "sent", "delivered")


class BatchToResend(NamedTuple):
    announcement_id: int
    batch: int


def authentic(conn: Connection, events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The acks whose signature the sending device's ack key verifies; the others are
    logged as refused (a forged ``played`` must not confirm a delivery, nor a forged
    ``rejected`` fail one).

    A ``received`` whose command's genuine ``played`` is in the same batch is left out
    unverified: the ``played`` moves the row further (``record_acks`` keeps the furthest), and
    when a county's villages answer at once, verifying both halves the listener's pace."""
    keys = {device_id: _public_key(text) for device_id, text
            in roster.ack_public_keys(conn, {device_id for device_id, _ in events}).items()}
    verified = {index: _verified(keys, device_id, event)
                for index, (device_id, event) in enumerate(events)
                if event.get("event") == protocol.PLAYED}
    played = {(events[index][0], events[index][1].get("command_id"))
              for index, genuine in verified.items() if genuine}
    genuine = []
    for index, (device_id, event) in enumerate(events):
        if event.get("event") == protocol.RECEIVED and (device_id, event.get("command_id")) in played:
            continue
        if verified[index] if index in verified else _verified(keys, device_id, event):
            genuine.append((device_id, event))
    return genuine


def _verified(keys: dict, device_id: str, event: dict[str, Any]) -> bool:
    key = keys.get(device_id)
    if key is not None and protocol.verify_ack(protocol.events_topic(device_id), event, key):
        return True
    log.warning("refused a %s ack for %s on %s's topic: %s", event.get("event"),
                event.get("command_id"), device_id,
                "no ack key registered (speakers rekey)" if key is None
                else "its signature does not verify with the device's ack key")
    return False


def _public_key(text: str):
    try:
        return protocol.load_public_key(text)
    except (ValueError, binascii.Error):
        log.error("the stored ack key is not an Ed25519 public key")
        return None


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
        ledger.note(conn, delivery.id, f"stopped on the device by stop {event.get('stop_command_id')}")
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
    # sent: the row is held until the ack is applied, or one of the two changes is lost.
    return ledger.held_for_update(conn, *this_delivery)


def _rejected(conn: Connection, delivery, event: dict[str, Any],
              max_attempts: int) -> BatchToResend | None:
    # A delivery already settled or already planned again has had this answer.
    if delivery.status not in OUT_WITH_DEVICE:
        return None
    reason = f"rejected by the device: {event.get('reason')}"
    if event.get("detail"):
        reason += f" ({event['detail']})"
    if is_retryable(event):
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
