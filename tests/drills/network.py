"""Hosts on one machine: network namespaces on a LAN of their own, for the multi-host drill.

    with Network(["database", "worker-a", "worker-b"]) as lan:
        lan.address("database")               # 169.254.N.2: where that host listens
        lan.launcher("worker-a")              # ["ip", "netns", "exec", NAME]: run a command there
        lan.cut("worker-b")                   # its link goes down: nothing in or out

Each host is a namespace (``ip netns``) with a loopback and one interface,
``eth0``, a veth pair whose other end is a port of a bridge in one more
namespace, the LAN's switch. This process (the test) joins the LAN as well, by
a veth pair of its own, so it reaches every host as an operator's machine on
the same network would. Every address is in ``169.254.N.0/24`` (link-local: no
router forwards it) with N picked at random; nothing else of the machine's
network is touched, and ``close`` deletes every namespace and link it made
(the processes in them must be stopped first).

``Network.unavailable()`` says why namespaces cannot be made here (not root, no
``ip``, the kernel refuses), so a test can skip with that reason.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid

#: This machine's own address on the LAN; the hosts get 2, 3, ... in the order given.
OWN_HOST = 1


class NetworkUnavailable(RuntimeError):
    """Namespaces, veth pairs or a bridge cannot be made here."""


def _ip(*arguments: str) -> None:
    done = subprocess.run(["ip", *arguments], capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise NetworkUnavailable(f"`ip {' '.join(arguments)}` failed: {done.stderr.strip()}")


class Network:
    def __init__(self, hosts: list[str]):
        self.hosts = list(hosts)
        tag = uuid.uuid4().hex[:6]
        self.prefix = f"tbdrill-{tag}"
        # Not 169.254.169.0/24: clouds serve their metadata at 169.254.169.254.
        self.subnet = random.choice([n for n in range(1, 255) if n != 169])
        self.switch = f"{self.prefix}-lan"
        self.own_link = f"tbd{tag}"  # the name of this machine's end (15 characters at most)
        self._made: list[str] = []

    @staticmethod
    def unavailable() -> str | None:
        """Why the drill's network cannot be made here, or None if it can (tried: made and
        removed)."""
        if os.geteuid() != 0:
            return "network namespaces need root (ip netns add); run as root to show scale-out"
        if shutil.which("ip") is None:
            return "no `ip` command (iproute2) to make network namespaces"
        probe = Network(["probe"])
        try:
            probe.open()
        except NetworkUnavailable as error:
            return f"cannot make network namespaces here: {error}"
        finally:
            probe.close()
        return None

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def address(self, host: str) -> str:
        return f"169.254.{self.subnet}.{self.hosts.index(host) + OWN_HOST + 1}"

    @property
    def own_address(self) -> str:
        return f"169.254.{self.subnet}.{OWN_HOST}"

    def launcher(self, host: str) -> list[str]:
        """The prefix that runs a command on ``host`` (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespace(host)]

    def open(self) -> "Network":
        self._add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for number, host in enumerate(self.hosts):
            namespace = self.namespace(host)
            self._add_namespace(namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
            self._plug(f"port{number}", "eth0", namespace)
            _ip("-n", namespace, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
        self._plug("portown", self.own_link, str(os.getpid()))
        _ip("addr", "add", f"{self.own_address}/24", "dev", self.own_link)
        _ip("link", "set", self.own_link, "up")
        return self

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)

    def _plug(self, port: str, interface: str, into: str) -> None:
        """A veth pair: ``port`` on the switch's bridge, ``interface`` in namespace ``into``
        (a name, or a process id for that process's namespace)."""
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", interface,
            "netns", into)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")

    def cut(self, host: str) -> None:
        """Take the host's link down: what it sends is lost, nothing reaches it."""
        _ip("-n", self.namespace(host), "link", "set", "eth0", "down")

    def close(self) -> None:
        """Delete the namespaces; their veth pairs go with them, this machine's end too."""
        for name in reversed(self._made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        self._made.clear()
        subprocess.run(["ip", "link", "del", self.own_link], capture_output=True, timeout=30)

    def __enter__(self) -> "Network":
        try:
            return self.open()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info) -> None:
        self.close()
