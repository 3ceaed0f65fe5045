"""The Twilio stand-in in a process of its own, switched at run time over HTTP.

    with TwilioStandIn(log_path) as twilio:       # starts ``python -m tests.fakes.twilio_process``
        env = {"TWILIO_API_BASE": twilio.url, **twilio.env}   # for gateway processes
        twilio.set_mode("error")                  # every create answered 500, code 20500
        twilio.set_mode("random", fraction=0.3, seed=7)
        twilio.set_mode("slow", delay=5)
        twilio.set_mode("down")                   # stops listening: connection refused
        twilio.set_mode("normal")                 # listening again, answering 201
        twilio.received()                         # Counter: To number -> messages answered 201

The API is ``FakeTwilio`` (``tests/fakes/twilio_server.py``: the real request
and response shapes); the control endpoint listens on a port of its own, so it
answers while the API is down:

    POST /mode      {"mode": "normal|error|random|slow|down", "fraction": 0.3, "seed": 0, "delay": 5}
    GET  /received  {"received": {to: count}, "errors_answered": n, "requests": n, "mode": …}
    GET  /rate      {"per_second": {unix second: messages}, "busiest_second": n,
                     "by_source": {client address: messages}}

``busiest_second`` is the most messages accepted within any one second (a
sliding window, not only whole clock seconds): what a provider's rate limit
counts. ``by_source`` tells the hosts of a multi-host drill apart.

The child listens on ``--host`` (127.0.0.1 unless told; a multi-host drill starts
it inside its services' network namespace, with ``launcher``, on that host's
address). It prints one JSON line (``{"url": …, "control": …}``) on stdout when it
is ready, and stops when its stdin closes or on SIGTERM. It keeps no message
bodies (a drill sends thousands), only the counts.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from typing import Any, Sequence

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, _QuietHandler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FROM_NUMBER = "+15005550006"


class Counting(FakeTwilio):
    """FakeTwilio keeping counts only: a drill's thousands of messages need no bodies."""

    def __init__(self, host: str = "127.0.0.1"):
        super().__init__(host=host)
        self.requests = deque(maxlen=100)
        self.accepted_at: list[float] = []  # time.monotonic() of each message answered 201
        self.per_second: Counter = Counter()
        self.by_source: Counter = Counter()

    def _create(self, kind: str, account: str, request: Request) -> Response:
        response = super()._create(kind, account, request)
        if kind == "Messages" and response.status_code == 201:
            with self._lock:
                self.accepted_at.append(time.monotonic())
                self.per_second[int(time.time())] += 1
                self.by_source[request.remote_addr] += 1
        return response

    def _message(self, form):
        resource = super()._message(form)
        with self._lock:
            self.messages.pop(resource["sid"], None)
        return resource

    def busiest_second(self) -> int:
        """The most messages accepted within any one second (taken under the lock, the
        times are in order)."""
        with self._lock:
            times = list(self.accepted_at)
        busiest = first = 0
        for last, moment in enumerate(times):
            while moment - times[first] >= 1.0:
                first += 1
            busiest = max(busiest, last - first + 1)
        return busiest


def _control(fake: Counting):
    def app(environ, start_response):
        request = Request(environ)
        if request.method == "POST" and request.path == "/mode":
            spec = request.get_json(force=True)
            mode = spec.pop("mode")
            if mode == "down":
                fake.go_down()
            else:
                fake.come_up()
                fake.set_mode(mode, **spec)
            body: dict[str, Any] = {"mode": mode, "up": fake.up}
        elif request.method == "GET" and request.path == "/received":
            with fake._lock:
                body = {"received": dict(fake.received), "errors_answered": fake.faults_answered,
                        "mode": fake.mode if fake.up else "down", "up": fake.up}
        elif request.method == "GET" and request.path == "/rate":
            busiest = fake.busiest_second()
            with fake._lock:
                body = {"per_second": dict(fake.per_second), "busiest_second": busiest,
                        "by_source": dict(fake.by_source)}
        else:
            return Response("not found", status=404)(environ, start_response)
        return Response(json.dumps(body), content_type="application/json")(environ, start_response)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    host = parser.parse_args().host
    fake = Counting(host)
    fake.__enter__()
    control = make_server(host, 0, _control(fake), threaded=True,
                          request_handler=_QuietHandler)
    threading.Thread(target=control.serve_forever, args=(0.05,), daemon=True).start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stopping.set()), daemon=True).start()
    print(json.dumps({"url": fake.url, "control": f"http://{host}:{control.server_port}"}),
          flush=True)
    stopping.wait()
    control.shutdown()
    fake.__exit__(None, None, None)


class TwilioStandIn:
    """The parent's handle on the stand-in process."""

    def __init__(self, log_path: str, *, host: str = "127.0.0.1", launcher: Sequence[str] = ()):
        self.log_path = log_path
        self.host = host
        self.launcher = list(launcher)  # e.g. ``ip netns exec NAME``: where it runs
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "TwilioStandIn":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*self.launcher, sys.executable, "-m", "tests.fakes.twilio_process",
                 "--host", self.host], cwd=ROOT,
                env={**os.environ, "PYTHONPATH": ROOT}, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        line = self.process.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError(f"the Twilio stand-in did not start; see {self.log_path}")
        info = json.loads(line)
        self.url, self.control = info["url"], info["control"]
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is None:
            return
        try:
            self.process.stdin.close()
            self.process.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        self.process.stdout.close()
        self.process = None

    @property
    def env(self) -> dict[str, str]:
        """The gateway's settings for Twilio SMS and calls through the stand-in."""
        return {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_API_BASE": self.url}

    def set_mode(self, mode: str, **spec) -> None:
        requests.post(f"{self.control}/mode", json={"mode": mode, **spec},
                      timeout=10).raise_for_status()

    def state(self) -> dict[str, Any]:
        answer = requests.get(f"{self.control}/received", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def rate(self) -> dict[str, Any]:
        """Messages per clock second, the busiest second, and messages per sending host."""
        answer = requests.get(f"{self.control}/rate", timeout=30)
        answer.raise_for_status()
        return answer.json()

    def received(self) -> Counter:
        return Counter(self.state()["received"])

    def total(self) -> int:
        return sum(self.state()["received"].values())

    def wait_total(self, at_least: int, timeout: float) -> int:
        """Wait until the stand-in has accepted ``at_least`` messages; returns how many."""
        deadline = time.monotonic() + timeout
        while True:
            total = self.total()
            if total >= at_least or time.monotonic() > deadline:
                return total
            time.sleep(0.1)


if __name__ == "__main__":
    main()
