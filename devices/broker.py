"""An embedded MQTT broker (amqtt) for the quickstart, when ``MQTT_URL`` is unset.

It listens on 127.0.0.1 only and lets no one in without a password, checked
by the ``check_password(user, password)`` callback it is given: the gateway
logs in as ``tongbao-gateway`` (with the password it keeps in its instance
folder), each loudspeaker controller with its device id as user name and the
password ``speakers add`` printed for it (the gateway's device registry keeps
only a hash). Anonymous clients and wrong passwords are refused at CONNECT. The gateway may use every
topic; a device may only publish its own events and status and only subscribe
to (and receive) its own commands, like the Mosquitto ACL in ``docs/mosquitto/``
(amqtt's own ``TopicAccessControlListPlugin`` lists topics per user name, fixed
at start, so the per-device rule is a plugin here). amqtt speaks MQTT 3.1.1
only, so its URL carries ``?protocol=3.1.1`` (no broker-side message expiry;
controllers still refuse expired commands themselves).

In the gateway process::

    broker = EmbeddedBroker(check_password=check)   # a free port, or port=1883
    broker.start()
    settings["mqtt_url"] = broker.url_for("tongbao-gateway", password)
    ...
    broker.stop()

Or as its own process, with the accounts in a file of ``user:sha256-hex-of-password``
lines (the gateway's among them): ``python -m devices.broker --port 1883 --passwords FILE``.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import logging
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from channels.loudspeaker import protocol

LOOPBACK = "127.0.0.1"
GATEWAY_USER = "tongbao-gateway"

PasswordCheck = Callable[[str, str], bool]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class PasswordAuthPlugin(BaseAuthPlugin):
    """Every client by ``check_password(user, password)``; nobody anonymous.

    amqtt publishes a last will without asking the topic plugins, so a device whose
    will is not on its own topics (another device's status) is refused here.
    """

    @dataclass
    class Config:
        gateway_username: str
        check_password: Any  # PasswordCheck; may block (a database), so it runs off the loop

    async def authenticate(self, *, session) -> bool:
        username, password = session.username, session.password
        if not username or password is None:
            return False
        if username != self.config.gateway_username and session.will_flag \
                and session.will_topic not in device_topics(username, Action.PUBLISH):
            self.context.logger.warning("refused %s: a last will on %s", username, session.will_topic)
            return False
        if isinstance(password, bytes):
            password = password.decode("utf-8", errors="replace")
        loop = asyncio.get_running_loop()
        try:
            return bool(await loop.run_in_executor(None, self.config.check_password,
                                                   username, password))
        except Exception:
            self.context.logger.exception("checking the password of %s failed", username)
            return False


class DeviceTopicsPlugin(BaseTopicPlugin):
    """The gateway everywhere; a device (user name = device id) only on its own topics."""

    @dataclass
    class Config:
        gateway_username: str

    async def topic_filtering(self, *, session=None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        username = session.username if session else None
        if not username or not topic:
            return False
        if username == self.config.gateway_username:
            return True
        return topic in device_topics(username, action)


def device_topics(device_id: str, action: Action | None) -> frozenset[str]:
    """The topics a device may use for ``action``: publish its events and status,
    subscribe to and receive its commands."""
    try:
        if action == Action.PUBLISH:
            return frozenset({protocol.events_topic(device_id), protocol.status_topic(device_id)})
        if action in (Action.SUBSCRIBE, Action.RECEIVE):
            return frozenset({protocol.commands_topic(device_id)})
    except ValueError:
        pass
    return frozenset()


class EmbeddedBroker:
    """amqtt running on its own asyncio loop in a background thread."""

    def __init__(self, port: int = 0, *, check_password: PasswordCheck):
        self.port = port or free_port()
        self.check_password = check_password
        self._thread = threading.Thread(target=self._run, name="embedded-mqtt-broker", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    def url_for(self, username: str, password: str) -> str:
        return (f"mqtt://{quote(username, safe='')}:{quote(password, safe='')}"
                f"@{LOOPBACK}:{self.port}?protocol=3.1.1")

    def config(self) -> dict:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{self.port}"}},
            # Listing plugins replaces amqtt's defaults (anonymous access, logging every
            # packet, $SYS statistics); both plugins must allow what a client does.
            "plugins": {
                f"{__name__}.PasswordAuthPlugin": {"gateway_username": GATEWAY_USER,
                                                   "check_password": self.check_password},
                f"{__name__}.DeviceTopicsPlugin": {"gateway_username": GATEWAY_USER},
            },
        }

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("embedded MQTT broker did not start in time")
        if self._error is not None:
            raise RuntimeError(f"embedded MQTT broker failed to start: {self._error}") from self._error

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        # amqtt's Broker must be created inside a running loop.
        from amqtt.broker import Broker

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            broker = Broker(self.config())
            await broker.start()
        except Exception as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        await self._stopping.wait()
        await broker.shutdown()


def read_passwords(path: str) -> dict[str, str]:
    """``user:sha256-hex`` lines (``#`` comments and blank lines skipped)."""
    accounts = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, separator, digest = line.partition(":")
            if not separator or len(digest) != 64:
                raise ValueError(f"{path}:{number}: expected user:sha256-hex")
            accounts[user] = digest.lower()
    return accounts


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devices.broker",
                                     description="Embedded MQTT broker on 127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--passwords", required=True,
                        help=f"file of user:sha256-hex-of-password lines: {GATEWAY_USER} and "
                             "one per device (user name = device id)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    accounts = read_passwords(args.passwords)

    def known(user: str, password: str) -> bool:
        digest = hashlib.sha256(password.encode("utf-8")).hexdigest()
        return user in accounts and hmac.compare_digest(accounts[user], digest)

    broker = EmbeddedBroker(args.port, check_password=known)
    finished = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: finished.set())
    broker.start()
    print(f"mqtt://{LOOPBACK}:{broker.port}?protocol=3.1.1", flush=True)
    finished.wait()
    broker.stop()


if __name__ == "__main__":
    main()
