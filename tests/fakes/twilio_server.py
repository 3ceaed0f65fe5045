"""A local Twilio-compatible API: the real request and response shapes, on 127.0.0.1
(or the ``host`` given: a multi-host drill's services address).

    with FakeTwilio() as twilio:
        settings = {**twilio.settings, "from_number": "+15005550006"}
        ...  # the real twilio Client, built from settings, talks to twilio.url
        twilio.requests[-1].form["To"]        # every request, parsed
        twilio.send_status(sid, "delivered")  # a signed status callback

It serves ``POST /2010-04-01/Accounts/{sid}/Messages.json`` and ``Calls.json``
with form bodies and basic auth, answers 201 with the resource JSON Twilio
returns, and Twilio's error JSON for the numbers in ``ERRORS``. A request to
``STALL_NUMBER`` gets no answer until the server stops, for timeout tests.

Callbacks are never sent on their own: a test asks for each one. The
``*_callback`` methods build a signed ``Callback`` (to post through a Flask
test client, say); ``send_status``, ``press`` and ``reply`` also post it.

Faults, for drills (``tests/drills``): ``set_mode("error")`` answers every
create with Twilio's 500 (code 20500), ``set_mode("random", fraction=0.3,
seed=1)`` a seeded share of them, ``set_mode("slow", delay=5)`` answers each
after ``delay`` seconds, ``set_mode("normal")`` ends the fault; ``go_down()``
stops listening (open connections are dropped, new ones refused) and ``come_up()``
listens again on the same port. ``received`` counts the messages answered 201 per ``To``.
Like Twilio it keeps a client's connection open between requests (``connections`` counts
those accepted).
``tests/fakes/twilio_process.py`` runs it in a process of its own.
"""
from __future__ import annotations

import json
import math
import random
import threading
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate
from typing import Mapping

import requests
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from tests.fakes.local_server import KeepAliveServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
API_VERSION = "2010-04-01"

#: To number -> (HTTP status, Twilio code, message), as Twilio answers them.
ERRORS: dict[str, tuple[int, int, str]] = {
    "+8613800000001": (400, 21211, "The 'To' number +8613800000001 is not a valid phone number."),
    "+8613800000002": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "+8613800000003": (400, 21614, "'To' number +8613800000003 is not a valid mobile number"),
    "+8613800000004": (429, 20429, "Too Many Requests"),
    "+8613800000005": (500, 20500, "Internal Server Error"),
    "+8613800000006": (400, 21215, "Account not authorized to call +8613800000006."),
}
STALL_NUMBER = "+8613800000009"
#: What ``set_mode`` accepts: answer normally, always 500, a seeded share of 500s, slowly.
MODES = ("normal", "error", "random", "slow")
INTERNAL_ERROR = (500, 20500, "Internal Server Error")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args) -> None:
        """Tests read ``FakeTwilio.requests``; an access log would only be noise."""


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    form: MultiDict
    username: str | None


@dataclass(frozen=True)
class Callback:
    """A webhook request as Twilio would send it, signed with the auth token."""

    url: str
    params: dict[str, str]
    headers: dict[str, str]


class FakeTwilio:
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN,
                 errors: Mapping[str, tuple[int, int, str]] = ERRORS, host: str = "127.0.0.1"):
        self.host = host
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.errors = dict(errors)
        self.requests: list[Recorded] = []
        self.messages: dict[str, dict] = {}
        self.calls: dict[str, dict] = {}
        self.twiml: dict[str, str] = {}  # call sid -> the TwiML the call is running now
        self.received: Counter = Counter()  # To -> messages answered 201
        self.faults_answered = 0  # creates answered 500 by ``set_mode``
        self.mode = "normal"
        self._fraction = 0.0
        self._delay = 0.0
        self._random = random.Random(0)
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._routes = Map([
            Rule(f"/{API_VERSION}/Accounts/<account>/Messages.json", endpoint="Messages",
                 methods=["POST"]),
            Rule(f"/{API_VERSION}/Accounts/<account>/Calls.json", endpoint="Calls",
                 methods=["POST"]),
        ])
        self._server = KeepAliveServer(host, 0, self._wsgi)
        self._connections_before = 0  # accepted by the servers before a ``go_down``
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self.up = True
        self._thread = self._serving_thread()

    def _serving_thread(self) -> threading.Thread:
        # A short poll lets ``shutdown`` return at once rather than after half a second.
        return threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def settings(self) -> dict[str, str]:
        return {"account_sid": self.account_sid, "auth_token": self.auth_token,
                "api_base": self.url}

    def __enter__(self) -> "FakeTwilio":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._release.set()  # let stalled requests finish so shutdown does not wait on them
        if self.up:
            self._stop_serving()

    @property
    def connections(self) -> int:
        """Client connections accepted so far (a client that keeps its connection open
        makes one however many requests it sends)."""
        return self._connections_before + self._server.connections

    def _stop_serving(self) -> None:
        self._server.stop()
        self._connections_before += self._server.connections
        self._thread.join()

    # --- faults --------------------------------------------------------------

    def set_mode(self, mode: str, *, fraction: float = 0.3, seed: int = 0,
                 delay: float = 5.0) -> None:
        """Answer creates normally, with 500s (all, or a seeded ``fraction``), or slowly."""
        if mode not in MODES:
            raise ValueError(f"mode is one of {', '.join(MODES)}, not {mode!r}")
        with self._lock:
            self.mode = mode
            self._fraction = fraction if mode == "random" else (1.0 if mode == "error" else 0.0)
            self._delay = delay if mode == "slow" else 0.0
            self._random = random.Random(seed)

    def go_down(self) -> None:
        """Stop listening: new connections are refused until ``come_up``."""
        if self.up:
            self.up = False
            self._stop_serving()

    def come_up(self) -> None:
        """Listen again, on the same port."""
        if not self.up:
            self._server = KeepAliveServer(self.host, self.port, self._wsgi)
            self._thread = self._serving_thread()
            self._thread.start()
            self.up = True

    def _fault(self) -> tuple[bool, float]:
        """(answer 500, seconds to wait first) for one create, as the mode says."""
        with self._lock:
            failing = self._fraction >= 1.0 or (
                self._fraction > 0 and self._random.random() < self._fraction)
            if failing:
                self.faults_answered += 1
            return failing, self._delay

    # --- the API -------------------------------------------------------------

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        auth = request.authorization
        with self._lock:
            self.requests.append(Recorded(request.method, request.path, request.form,
                                          auth.username if auth else None))
        try:
            endpoint, args = self._routes.bind_to_environ(environ).match()
        except HTTPException as error:
            response = _error(error.code, 20404, f"The requested resource {request.path} "
                                                 "was not found")
        else:
            response = self._create(endpoint, args["account"], request)
        return response(environ, start_response)

    def _create(self, kind: str, account: str, request: Request) -> Response:
        auth = request.authorization
        if (account != self.account_sid or auth is None or auth.username != self.account_sid
                or auth.password != self.auth_token):
            return _error(401, 20003, "Authenticate")
        form = request.form
        problem = (_message_problem if kind == "Messages" else _call_problem)(form)
        if problem:
            return _error(400, *problem)
        failing, delay = self._fault()
        if delay:
            self._release.wait(delay)
        if failing:
            return _error(*INTERNAL_ERROR)
        if form["To"] in self.errors:
            return _error(*self.errors[form["To"]])
        if form["To"] == STALL_NUMBER:
            self._release.wait(60)
        resource = (self._message if kind == "Messages" else self._call)(form)
        return Response(_json(resource), status=201, content_type="application/json")

    def _message(self, form: MultiDict) -> dict:
        sid = "SM" + uuid.uuid4().hex
        now = formatdate(usegmt=True)
        body = form.get("Body", "")
        resource = {
            "account_sid": self.account_sid, "api_version": API_VERSION, "body": body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": form.get("From"), "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0", "num_segments": str(_segments(body)), "price": None,
            "price_unit": "USD", "sid": sid,
            "status": "accepted" if form.get("MessagingServiceSid") else "queued",
            "subresource_uris": {"media": f"{self._base_uri()}/Messages/{sid}/Media.json"},
            "to": form["To"], "uri": f"{self._base_uri()}/Messages/{sid}.json",
        }
        with self._lock:
            self.messages[sid] = {**resource, "form": form}
            self.received[form["To"]] += 1
        return resource

    def _call(self, form: MultiDict) -> dict:
        sid = "CA" + uuid.uuid4().hex
        now = formatdate(usegmt=True)
        base = f"{self._base_uri()}/Calls/{sid}"
        resource = {
            "account_sid": self.account_sid, "annotation": None, "answered_by": None,
            "api_version": API_VERSION, "caller_name": None, "date_created": now,
            "date_updated": now, "direction": "outbound-api", "duration": None,
            "end_time": None, "forwarded_from": None, "from": form["From"],
            "from_formatted": form["From"], "group_sid": None, "parent_call_sid": None,
            "phone_number_sid": "PN" + uuid.uuid4().hex, "price": None, "price_unit": "USD",
            "queue_time": "0", "sid": sid, "start_time": None, "status": "queued",
            "subresource_uris": {"notifications": f"{base}/Notifications.json",
                                 "recordings": f"{base}/Recordings.json"},
            "to": form["To"], "to_formatted": form["To"], "trunk_sid": None,
            "uri": f"{base}.json",
        }
        with self._lock:
            self.calls[sid] = {**resource, "form": form}
            if form.get("Twiml"):
                self.twiml[sid] = form["Twiml"]
        return resource

    def _base_uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}"

    # --- callbacks -----------------------------------------------------------

    def sign(self, url: str, params: dict[str, str]) -> Callback:
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        return Callback(url, params, {"X-Twilio-Signature": signature})

    def status_callback(self, sid: str, status: str, *, error_code: int | None = None,
                        duration: int | None = None) -> Callback:
        """The status callback Twilio would post for a message (SM…) or call (CA…)."""
        record = self.messages.get(sid) or self.calls[sid]
        form = record["form"]
        params = {"AccountSid": self.account_sid, "ApiVersion": API_VERSION,
                  "From": record["from"] or "+15005550006", "To": record["to"]}
        if sid in self.messages:
            params.update(MessageSid=sid, SmsSid=sid, MessageStatus=status, SmsStatus=status)
            if form.get("MessagingServiceSid"):
                params["MessagingServiceSid"] = form["MessagingServiceSid"]
        else:
            params.update(CallSid=sid, CallStatus=status, Direction="outbound-api",
                          Called=record["to"], Caller=record["from"],
                          CallbackSource="call-progress-events", Timestamp=formatdate())
            if duration is not None:
                params.update(CallDuration=str(duration), Duration=str(math.ceil(duration / 60)))
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        return self.sign(form["StatusCallback"], params)

    def gather_callback(self, sid: str, digits: str) -> Callback:
        """The request the call's current ``<Gather>`` makes; ``""`` for no key pressed."""
        gather = ET.fromstring(self.twiml[sid]).find("Gather")
        record = self.calls[sid]
        params = {"AccountSid": self.account_sid, "ApiVersion": API_VERSION, "CallSid": sid,
                  "CallStatus": "in-progress", "Direction": "outbound-api",
                  "From": record["from"], "To": record["to"], "Digits": digits,
                  "FinishedOnKey": ""}
        return self.sign(gather.get("action"), params)

    def inbound_callback(self, url: str, sender: str, body: str,
                         to: str = "+15005550006") -> Callback:
        """A resident's SMS reply as Twilio posts it to the number's webhook."""
        sid = "SM" + uuid.uuid4().hex
        params = {"AccountSid": self.account_sid, "ApiVersion": API_VERSION, "Body": body,
                  "From": sender, "To": to, "MessageSid": sid, "SmsMessageSid": sid,
                  "SmsSid": sid, "SmsStatus": "received", "NumMedia": "0",
                  "NumSegments": str(_segments(body))}
        return self.sign(url, params)

    def send_status(self, sid: str, status: str, **details) -> requests.Response:
        return post(self.status_callback(sid, status, **details))

    def press(self, sid: str, digits: str) -> requests.Response:
        """Answer the call's current gather; its TwiML answer becomes the call's TwiML."""
        response = post(self.gather_callback(sid, digits))
        if response.ok and "<Response" in response.text:
            self.twiml[sid] = response.text
        return response

    def reply(self, url: str, sender: str, body: str) -> requests.Response:
        return post(self.inbound_callback(url, sender, body))


def post(callback: Callback) -> requests.Response:
    return requests.post(callback.url, data=callback.params, headers=callback.headers, timeout=10)


def _message_problem(form: MultiDict) -> tuple[int, str] | None:
    if not form.get("To"):
        return 21604, "A 'To' phone number is required."
    if not (form.get("From") or form.get("MessagingServiceSid")):
        return 21603, "A 'From' phone number is required."
    if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
        return 21602, "Message body is required."
    if len(form.get("Body", "")) > 1600:
        return 21617, "The concatenated message body exceeds the 1600 character limit."
    return None


def _call_problem(form: MultiDict) -> tuple[int, str] | None:
    if not form.get("To"):
        return 21201, "No 'To' number is specified"
    if not form.get("From"):
        return 21213, "No 'From' number is specified"
    if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
        return 21205, "Url parameter is required."
    if len(form.get("Twiml", "")) > 4000:  # https://www.twilio.com/docs/api/errors/32018
        return 32018, "Twiml size exceeded maximum allowed value of 4000 characters"
    return None


def _segments(body: str) -> int:
    """Roughly Twilio's count, kept independent of the code under test."""
    units = len(body.encode("utf-16-le")) // 2
    single, per_part = (160, 153) if body.isascii() else (70, 67)
    return 1 if units <= single else math.ceil(units / per_part)


def _error(status: int, code: int, message: str) -> Response:
    body = {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    return Response(_json(body), status=status, content_type="application/json")


def _json(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False)
