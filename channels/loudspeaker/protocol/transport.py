"""Broker addresses and paho-mqtt clients, shared by the gateway and the controller.

Section 1 of ``docs/loudspeaker-protocol.md``. Uses only paho-mqtt and the
standard library, like the controller itself.

A broker URL is ``mqtt://user:password@host:port`` or ``mqtts://...`` (TLS,
system CA store). MQTT 5 is the default; ``?protocol=3.1.1`` selects MQTT 3.1.1
for brokers without MQTT 5 (the embedded amqtt broker), which only loses the
broker-side message expiry: controllers check ``expires_at`` themselves.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    protocol: str = "5"

    @classmethod
    def parse(cls, url: str) -> "BrokerAddress":
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"broker URL must be mqtt:// or mqtts:// with a host, not {url!r}")
        protocol = parse_qs(parts.query).get("protocol", ["5"])[0]
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown MQTT protocol {protocol!r}; use 5 or 3.1.1")
        return cls(host=parts.hostname, port=parts.port or DEFAULT_PORTS[parts.scheme],
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   tls=parts.scheme == "mqtts", protocol=protocol)

    @property
    def mqtt5(self) -> bool:
        return self.protocol == "5"

    def safe_url(self) -> str:
        """The URL without its password, for logs."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        query = "" if self.mqtt5 else f"?protocol={self.protocol}"
        return f"{scheme}://{user}{self.host}:{self.port}{query}"


def new_client(address: BrokerAddress, client_id: str, *, persistent: bool = False) -> mqtt.Client:
    """A configured, not yet connected client.

    ``persistent`` keeps the broker-side session (subscriptions and queued QoS 1
    messages) across reconnects, so nothing is missed while a client is away.
    """
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=PROTOCOLS[address.protocol],
                         clean_session=None if address.mqtt5 else not persistent)
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def start(client: mqtt.Client, address: BrokerAddress, *, persistent: bool = False,
          session_expiry_seconds: int = 86_400, keepalive: int = 30,
          maximum_packet_size: int | None = None) -> None:
    """Connect (blocking TCP connect) and start paho's network thread.

    ``maximum_packet_size`` (MQTT 5 only) asks the broker not to send this client
    any packet larger: the broker drops it instead. MQTT 3.1.1 has no such limit.
    """
    if address.mqtt5:
        properties = Properties(PacketTypes.CONNECT)
        if persistent:
            properties.SessionExpiryInterval = session_expiry_seconds
        if maximum_packet_size:
            properties.MaximumPacketSize = maximum_packet_size
        client.connect(address.host, address.port, keepalive, clean_start=not persistent,
                       properties=properties)
    else:
        client.connect(address.host, address.port, keepalive)
    client.loop_start()


def ending_session(address: BrokerAddress) -> Properties | None:
    """DISCONNECT properties that end a persistent MQTT 5 session now."""
    if not address.mqtt5:
        return None  # MQTT 3.1.1: only a clean reconnect ends it
    properties = Properties(PacketTypes.DISCONNECT)
    properties.SessionExpiryInterval = 0
    return properties


def expiry_properties(address: BrokerAddress, seconds: int) -> Properties | None:
    """MQTT 5 message expiry, so a broker drops a command nobody fetched in time."""
    if not address.mqtt5:
        return None
    properties = Properties(PacketTypes.PUBLISH)
    properties.MessageExpiryInterval = max(1, seconds)
    return properties


class ConnectedSignal:
    """Set while the client holds an accepted connection; for waiting on CONNACK."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.last_refusal: str | None = None

    def connected(self, reason_code: mqtt.ReasonCode) -> bool:
        if reason_code.is_failure:
            self.last_refusal = str(reason_code)
            return False
        self._event.set()
        return True

    def disconnected(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def is_set(self) -> bool:
        return self._event.is_set()
