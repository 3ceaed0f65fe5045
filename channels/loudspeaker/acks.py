"""Listening to what loudspeaker controllers report: acks and presence.

The gateway starts one ``AckListener`` and wires its callbacks to the ledger:
``on_event(device_id, event)`` for every ``received`` / ``played`` /
``rejected`` / ``stopped`` ack, ``on_presence(device_id, online)`` whenever a
device's retained status changes (including the broker's last will).

Each ack carries the device's signature (its own ack key); this listener only
reads them, and the gateway checks the signature against the key it registered
for the device on whose topic the ack arrived
(``gateway.delivery.loudspeakers.acks.authentic``). The broker ACL is a second
wall: a device may publish only on its own topics.

Run only one listener per ``client_id``: its broker session is persistent so
acks published while the gateway restarts are queued for it, and a second
client with the same id would take that session over. A broker that restarts
without its sessions drops the acks devices publish before the listener has
subscribed again: ``on_resubscribed`` tells the gateway, which then asks the
devices again for every play not yet acknowledged.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from channels.loudspeaker import protocol
from channels.loudspeaker.protocol import transport

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict[str, Any]], None]
PresenceHandler = Callable[[str, bool], None]
KNOWN_EVENTS = frozenset({protocol.RECEIVED, protocol.PLAYED, protocol.REJECTED, protocol.STOPPED})


def parse_event(topic: str, payload: bytes) -> tuple[str, dict[str, Any]] | None:
    """``(device_id, ack)`` for a well-formed ack on an events topic, else ``None``."""
    where = protocol.split_topic(topic)
    if where is None or where[1] != "events":
        return None
    try:
        event = protocol.decode_json(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    if event.get("event") not in KNOWN_EVENTS:
        return None
    return where[0], event


def parse_presence(topic: str, payload: bytes) -> tuple[str, bool] | None:
    """``(device_id, online)`` for a status message, else ``None``.

    An empty payload (a cleared retained status) counts as offline.
    """
    where = protocol.split_topic(topic)
    if where is None or where[1] != "status":
        return None
    text = payload.decode("utf-8", errors="replace").strip()
    if text not in (protocol.ONLINE, protocol.OFFLINE, ""):
        return None
    return where[0], text == protocol.ONLINE


def is_retryable(event: dict[str, Any]) -> bool:
    """Whether a ``rejected`` ack may be overcome by sending the delivery again."""
    return event.get("event") == protocol.REJECTED and event.get("reason") in protocol.RETRYABLE_REASONS


class AckListener:
    def __init__(self, mqtt_url: str, on_event: EventHandler, on_presence: PresenceHandler, *,
                 client_id: str = "tongbao-acks",
                 on_resubscribed: Callable[[], None] = lambda: None):
        self.address = transport.BrokerAddress.parse(mqtt_url)
        self.on_event = on_event
        self.on_presence = on_presence
        self.on_resubscribed = on_resubscribed
        self._connected = transport.ConnectedSignal()
        self._subscribed = threading.Event()
        self._client = transport.new_client(self.address, client_id, persistent=True)
        # One listener, not thousands of devices: after a broker restart it may try
        # again every few seconds, and the sooner it is back the fewer acks wait.
        self._client.reconnect_delay_set(min_delay=1, max_delay=4)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; raises ``ConnectionError`` if that does not happen in time."""
        transport.start(self._client, self.address, persistent=True)
        if not (self._connected.wait(timeout) and self._subscribed.wait(timeout)):
            self.stop()
            raise ConnectionError(f"ack listener not connected to {self.address.safe_url()}: "
                                  f"{self._connected.last_refusal or 'no CONNACK'}")

    def stop(self, *, end_session: bool = False) -> None:
        """Disconnect. ``end_session`` also ends the broker-side session, for a listener
        whose client id will not come back (a test's, a benchmark's): otherwise the broker
        keeps queueing every ack for it until the session expires."""
        self._client.disconnect(properties=transport.ending_session(self.address)
                                if end_session else None)
        self._client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._connected.connected(reason_code):
            log.error("broker refused the ack listener: %s", reason_code)
            return
        # Subscribing on every connect covers a broker that lost our session.
        client.subscribe([(protocol.EVENTS_WILDCARD, protocol.QOS),
                          (protocol.STATUS_WILDCARD, protocol.QOS)])

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.disconnected()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("broker refused the ack subscriptions: %s", ", ".join(refused))
            return
        if self._subscribed.is_set():
            log.warning("ack listener subscribed again after losing the broker")
            self.on_resubscribed()
        self._subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        # An exception here would kill paho's network thread; log it and go on.
        try:
            self._dispatch(message.topic, message.payload)
        except Exception:
            log.exception("ack handler failed for %s", message.topic)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        event = parse_event(topic, payload)
        if event is not None:
            self.on_event(*event)
            return
        presence = parse_presence(topic, payload)
        if presence is not None:
            self.on_presence(*presence)
            return
        log.warning("ignored unreadable message on %s", topic)
