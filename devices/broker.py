"""An embedded MQTT broker (amqtt) for the quickstart, when ``MQTT_URL`` is unset.

It listens on 127.0.0.1 only and allows anonymous clients: anyone on this
machine may connect, which is acceptable for a demo because commands are
signed, but production uses an external broker with the ACL in
``docs/mosquitto/``. amqtt speaks MQTT 3.1.1 only, so its URL carries
``?protocol=3.1.1`` (no broker-side message expiry; controllers still refuse
expired commands themselves).

In the gateway process::

    broker = EmbeddedBroker()        # a free port, or EmbeddedBroker(port=1883)
    broker.start()
    settings["mqtt_url"] = broker.url
    ...
    broker.stop()

Or as its own process: ``python -m devices.broker --port 1883``.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import threading

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class EmbeddedBroker:
    """amqtt running on its own asyncio loop in a background thread."""

    def __init__(self, port: int = 0):
        self.port = port or free_port()
        self._thread = threading.Thread(target=self._run, name="embedded-mqtt-broker", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}?protocol=3.1.1"

    def config(self) -> dict:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{self.port}"}},
            # Listing plugins replaces amqtt's defaults, which also log every
            # packet and publish $SYS statistics.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devices.broker",
                                     description="Embedded MQTT broker on 127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    broker = EmbeddedBroker(args.port)
    finished = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: finished.set())
    broker.start()
    print(broker.url, flush=True)
    finished.wait()
    broker.stop()


if __name__ == "__main__":
    main()
