"""What the Twilio SMS and voice channels share: the client, the error table, signatures.

Settings (a plain mapping): ``account_sid``, ``auth_token``, optional
``api_base`` (an origin such as ``http://127.0.0.1:8765`` that replaces every
``https://*.twilio.com``: a local stand-in or an egress proxy) and ``timeout``
in seconds (default 10; the library's own client would wait forever).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.base import ChannelError

DEFAULT_TIMEOUT = 10.0

_TWILIO_ORIGIN = re.compile(r"^https://[A-Za-z0-9.-]+\.twilio\.com(?=/|$)")

#: Twilio error code -> (permanent, reason). Permanent means this recipient
#: cannot be reached this way: retrying only pays again for the same failure.
ERRORS: dict[int, tuple[bool, str]] = {
    21211: (True, "invalid phone number"),
    21217: (True, "invalid phone number"),
    13223: (True, "invalid phone number format"),
    13224: (True, "number cannot be called"),
    13225: (True, "calls to this number are forbidden"),
    13227: (True, "no permission to call this country"),
    21215: (True, "no permission to call this country"),
    21408: (True, "no permission to send SMS to this region"),
    21610: (True, "recipient has unsubscribed (replied STOP)"),
    21612: (True, "number cannot receive SMS from this sender"),
    21614: (True, "not a mobile number"),
    30004: (True, "message blocked by the recipient or carrier"),
    30005: (True, "unknown or inactive number"),
    30006: (True, "landline or unreachable carrier"),
    30007: (True, "filtered by the carrier as spam"),
    30003: (False, "handset unreachable (off or out of coverage)"),
    30008: (False, "unknown delivery error"),
    30001: (False, "Twilio queue overflow"),
    20429: (False, "too many requests"),
    20500: (False, "Twilio internal error"),
    20503: (False, "Twilio temporarily unavailable"),
    # Wrong credentials are the account's fault, not the resident's: retrying
    # gives the operator time to fix TWILIO_AUTH_TOKEN before anyone is given up.
    20003: (False, "Twilio authentication failed: check the account SID and auth token"),
}


class RebasedHttpClient(TwilioHttpClient):
    """The library's HTTP client, with a timeout and an optional other origin."""

    def __init__(self, api_base: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        super().__init__(timeout=timeout)
        self.api_base = api_base.rstrip("/") if api_base else None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any):
        if self.api_base:
            url = _TWILIO_ORIGIN.sub(lambda _: self.api_base, url, count=1)
        return super().request(method, url, *args, **kwargs)


def build_client(settings: Mapping[str, Any]) -> Client:
    for key in ("account_sid", "auth_token"):
        if not settings.get(key):
            raise ValueError(f"Twilio setting {key!r} is missing")
    http_client = RebasedHttpClient(settings.get("api_base") or None,
                                    float(settings.get("timeout") or DEFAULT_TIMEOUT))
    return Client(settings["account_sid"], settings["auth_token"], http_client=http_client)


def close_client(client: Client) -> None:
    session = client.http_client.session
    if session is not None:
        session.close()


def classify(code: int | None, http_status: int | None = None) -> tuple[bool, str]:
    """(permanent, reason) for a Twilio error code.

    A code missing from the table is transient when the HTTP status says the
    fault was Twilio's or a rate limit (5xx, 429), and permanent otherwise: a
    request Twilio refused, or a delivery failure we cannot explain, is not
    worth paying for again.
    """
    if code in ERRORS:
        return ERRORS[code]
    if http_status is not None and (http_status >= 500 or http_status == 429):
        return False, f"Twilio answered HTTP {http_status}"
    return True, f"Twilio error {code}" if code is not None else "Twilio gave no reason"


def delivery_failure(error_code: Any) -> tuple[int | None, bool, str]:
    """(code, permanent, reason) for the ``ErrorCode`` of a status callback."""
    code = int(error_code) if str(error_code or "").isdigit() else None
    permanent, reason = classify(code)
    return code, permanent, f"[{code}] {reason}" if code is not None else reason


def channel_error(error: Exception) -> ChannelError:
    """The ``ChannelError`` for what the library or ``requests`` raised."""
    if isinstance(error, TwilioRestException):
        return _coded_error(error.code, error.status, error.msg)
    if isinstance(error, TwilioServiceException):
        return _coded_error(error.code, error.status, error.detail or error.title)
    if isinstance(error, requests.ConnectionError):  # includes ConnectTimeout
        return ChannelError(f"could not connect to Twilio: {error}", code="connect")
    if isinstance(error, requests.Timeout):
        # The request went out: Twilio may have accepted it before the answer was lost.
        return ChannelError("Twilio did not answer in time; the request may have gone through",
                            code="timeout")
    if isinstance(error, (TwilioException, requests.RequestException)):
        return ChannelError(f"Twilio request failed: {error}")
    raise TypeError(f"not a Twilio or HTTP error: {error!r}")


def _coded_error(code: int | None, http_status: int, twilio_message: str) -> ChannelError:
    permanent, reason = classify(code, http_status)
    detail = twilio_message.removeprefix("Unable to create record: ")
    return ChannelError(f"{reason} (Twilio: {detail})", permanent=permanent,
                        code=str(code) if code is not None else None)


def valid_signature(auth_token: str, url: str, params: Mapping[str, Any],
                    signature: str | None) -> bool:
    """Whether ``X-Twilio-Signature`` matches; ``url`` must be the public URL Twilio called."""
    if not signature:
        return False
    return RequestValidator(auth_token).validate(url, params, signature)
