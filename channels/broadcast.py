"""Broadcasters and signed webhooks: one HTTPS POST per destination, signed with its secret.

``Outgoing.address`` is the destination's number in the registry; the channel looks up its
URL and shared secret through ``settings["destination"]`` (a function the gateway gives,
so secrets stay out of the ledger's address column and a removed destination is refused).

* ``broadcast`` (TV, traffic radio, the emergency broadcasting platform) POSTs
  ``multipart/form-data`` with three parts: ``document`` (the GB/T 35965.1 XML,
  ``application/xml``), ``crawl`` (the one-line TV crawl) and ``script`` (the radio script).
* ``webhook`` POSTs the JSON body of ``messages.broadcast.render_webhook``.

Every request carries (docs/interop.md has a receiver's check in Python):

* ``X-Tongbao-Timestamp``: Unix seconds when it was signed;
* ``X-Tongbao-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed by the shared secret, of
  the timestamp, a ``.``, and the raw body bytes;
* ``X-Tongbao-Delivery``: the delivery's number, the same on every retry (deduplicate on it).

The receiver's 2xx is the delivery. 5xx, 408, 429 (its ``Retry-After`` honoured), timeouts
and connection errors are retried with backoff; any other answer (4xx, a redirect) is
permanent: the destination refused what it was sent or moved, and only an operator can fix it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Callable, Mapping, NamedTuple

import requests

from channels.base import Channel, ChannelError, Outgoing, Receipt
from channels.http import OriginProxies, many_origins_session

TIMESTAMP_HEADER = "X-Tongbao-Timestamp"
SIGNATURE_HEADER = "X-Tongbao-Signature"
DELIVERY_HEADER = "X-Tongbao-Delivery"
#: How far a receiver should accept a timestamp from its own clock (seconds).
REPLAY_WINDOW_SECONDS = 300
TRANSIENT_STATUSES = (408, 425, 429)


class Destination(NamedTuple):
    url: str
    secret: str


DestinationLookup = Callable[[str], "Destination | None"]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Tongbao-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None,
           window: float = REPLAY_WINDOW_SECONDS) -> bool:
    """What a receiver checks: the signature matches and the timestamp is within the window."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except (TypeError, ValueError):
        return False
    return age <= window and hmac.compare_digest(sign(secret, timestamp, body), signature or "")


class SignedPostChannel(Channel):
    """POST a signed body to the destination named by the address; 2xx is delivered."""

    personal = False
    rate_per_second = 5.0

    def __init__(self, settings: Mapping[str, Any] | None = None):
        super().__init__(settings)
        self.destination: DestinationLookup = self.settings["destination"]
        self.timeout = float(self.settings.get("timeout") or 10)
        self.session = many_origins_session()
        self.proxies_for = OriginProxies()

    def body(self, message: Outgoing) -> tuple[bytes, str]:
        """The request body and its content type."""
        raise NotImplementedError

    def send(self, message: Outgoing) -> Receipt:
        destination = self.destination(message.address)
        if destination is None:
            raise ChannelError("the destination was removed from the registry", permanent=True,
                               code="removed")
        body, content_type = self.body(message)
        timestamp = str(int(time.time()))
        headers = {"Content-Type": content_type, TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(destination.secret, timestamp, body),
                   DELIVERY_HEADER: str(message.delivery_id)}
        try:
            response = self.session.post(destination.url, data=body, headers=headers,
                                         timeout=self.timeout, allow_redirects=False,
                                         proxies=self.proxies_for(destination.url))
        except requests.RequestException as error:
            raise ChannelError(f"destination unreachable: {type(error).__name__}",
                               code="http") from None
        return _outcome(response)

    def close(self) -> None:
        self.session.close()


def _outcome(response: requests.Response) -> Receipt:
    status = response.status_code
    if 200 <= status < 300:
        return Receipt(provider_id=response.headers.get("X-Request-Id"), status="delivered",
                       detail=f"HTTP {status}")
    if status >= 500 or status in TRANSIENT_STATUSES:
        raise ChannelError(f"destination answered HTTP {status}", code=str(status),
                           retry_after=_retry_after(response))
    raise ChannelError(f"destination refused with HTTP {status}: {response.text[:200]}",
                       permanent=True, code=str(status))


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0)
    except ValueError:
        return None


class BroadcastChannel(SignedPostChannel):
    """The GB/T 35965.1 document, the crawl and the radio script, as multipart/form-data."""

    name = "broadcast"

    def body(self, message: Outgoing) -> tuple[bytes, str]:
        rendered = message.rendered
        prepared = requests.Request("POST", "http://body.invalid/", files={
            "document": ("alert.xml", rendered.text.encode("utf-8"), "application/xml"),
            "crawl": (None, rendered.data["crawl"].encode("utf-8"), "text/plain; charset=utf-8"),
            "script": (None, rendered.data["radio_script"].encode("utf-8"),
                       "text/plain; charset=utf-8"),
        }).prepare()
        return prepared.body, prepared.headers["Content-Type"]


class WebhookChannel(SignedPostChannel):
    """The notice, its renderings and its CAP URL as JSON."""

    name = "webhook"

    def body(self, message: Outgoing) -> tuple[bytes, str]:
        body = {**message.rendered.data["body"], "delivery": message.delivery_id}
        return (json.dumps(body, ensure_ascii=False).encode("utf-8"),
                "application/json; charset=utf-8")
