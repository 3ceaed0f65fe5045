"""What the Twilio SMS and voice channels share: the client, the error table, signatures.

The error table (``ERRORS``) sorts Twilio's error codes into three outcomes:
try again later, fail this channel for this resident, or the number is invalid
for every channel that uses it; a few also pause the whole channel for a while.

Settings (a plain mapping): ``account_sid``, ``auth_token``, optional
``api_base`` (an origin such as ``http://127.0.0.1:8765`` that replaces every
``https://*.twilio.com``: a local stand-in or an egress proxy) and ``timeout``
in seconds (default 10; the library's own client would wait forever).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from channels.base import ChannelError, StatusUpdate
from channels.http import provider_session

DEFAULT_TIMEOUT = 10.0

_API_ORIGIN = "https://api.twilio.com"  # where the library sends, unless rebased
_TWILIO_ORIGIN = re.compile(r"^https://[A-Za-z0-9.-]+\.twilio\.com(?=/|$)")

#: What a Twilio error code means for the delivery that got it (``Verdict.outcome``).
RETRY = "retry"              # transient: tried again later, within the notice's retry budget
FAIL_CHANNEL = "channel"     # this channel cannot reach this resident; another one may
ADDRESS_INVALID = "address"  # the number itself is dead: no channel using it is tried again


@dataclass(frozen=True)
class Verdict:
    """A Twilio error code's outcome, why, and how long (s) it pauses the whole channel."""

    outcome: str
    reason: str
    pause_seconds: float | None = None


#: Twilio error code -> Verdict (https://www.twilio.com/docs/api/errors). A code
#: missing here is transient (``classify``): retried with the normal bounded
#: attempts, never given up on at the first sight of it.
ERRORS: dict[int, Verdict] = {
    # The number does not exist: an SMS and a call to it fail alike.
    21211: Verdict(ADDRESS_INVALID, "invalid phone number"),
    21217: Verdict(ADDRESS_INVALID, "phone number does not appear to be valid"),
    21401: Verdict(ADDRESS_INVALID, "invalid phone number"),
    13223: Verdict(ADDRESS_INVALID, "invalid phone number format"),
    13224: Verdict(ADDRESS_INVALID, "invalid phone number"),
    30005: Verdict(ADDRESS_INVALID, "unknown or inactive number"),
    # The number is fine, this channel is not: a landline gets no SMS, but a call reaches it.
    21614: Verdict(FAIL_CHANNEL, "not a mobile number"),
    30006: Verdict(FAIL_CHANNEL, "landline or unreachable carrier"),
    21610: Verdict(FAIL_CHANNEL, "recipient has unsubscribed (replied STOP)"),
    21612: Verdict(FAIL_CHANNEL, "number cannot receive SMS from this sender"),
    21408: Verdict(FAIL_CHANNEL, "no permission to send SMS to this region"),
    21215: Verdict(FAIL_CHANNEL, "no permission to call this country"),
    13225: Verdict(FAIL_CHANNEL, "calls to this number are forbidden"),
    13227: Verdict(FAIL_CHANNEL, "no permission to call this country"),
    30004: Verdict(FAIL_CHANNEL, "message blocked by the recipient or carrier"),
    30007: Verdict(FAIL_CHANNEL, "filtered by the carrier as spam"),
    32018: Verdict(FAIL_CHANNEL, "the call's TwiML is longer than 4,000 characters"),
    # Worth another try later.
    30001: Verdict(RETRY, "Twilio queue overflow"),
    30003: Verdict(RETRY, "handset unreachable (off or out of coverage)"),
    30008: Verdict(RETRY, "unknown delivery error"),
    30009: Verdict(RETRY, "a segment of the message went missing"),
    20429: Verdict(RETRY, "too many requests"),
    20500: Verdict(RETRY, "Twilio internal error"),
    20503: Verdict(RETRY, "Twilio temporarily unavailable"),
    # Wrong credentials are the account's fault, not the resident's: retrying
    # gives the operator time to fix TWILIO_AUTH_TOKEN before anyone is given up.
    20003: Verdict(RETRY, "Twilio authentication failed: check the account SID and auth token"),
    # The sending account is over a limit: the channel waits, no resident is failed.
    30017: Verdict(RETRY, "carrier network congestion", pause_seconds=30),
    30022: Verdict(RETRY, "sending rate limit exceeded", pause_seconds=60),
    30023: Verdict(RETRY, "daily message cap reached", pause_seconds=3600),
}


class RebasedHttpClient(TwilioHttpClient):
    """The library's HTTP client, with a timeout and an optional other origin."""

    def __init__(self, api_base: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        super().__init__(timeout=timeout)
        self.api_base = api_base.rstrip("/") if api_base else None
        provider_session(self.api_base or _API_ORIGIN, self.session)

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


def classify(code: int | None) -> Verdict:
    """The verdict on a Twilio error code: transient for a code not in ``ERRORS``, or none."""
    if code in ERRORS:
        return ERRORS[code]
    return Verdict(RETRY, f"Twilio error {code}" if code is not None else "Twilio gave no reason")


def error_flags(verdict: Verdict) -> dict[str, Any]:
    """The ``ChannelError`` (and ``StatusUpdate``) flags that say a verdict."""
    return {"permanent": verdict.outcome != RETRY,
            "address_invalid": verdict.outcome == ADDRESS_INVALID,
            "pauses_channel": verdict.pause_seconds is not None,
            "retry_after": verdict.pause_seconds}


def failed_update(provider_id: str | None, error_code: Any, *, no_code: Verdict,
                  extra: Mapping[str, Any]) -> StatusUpdate:
    """The ledger update for a status callback reporting a failure with its ``ErrorCode``;
    ``no_code`` is the verdict when the callback gives none."""
    code = int(error_code) if str(error_code or "").isdigit() else None
    verdict = classify(code) if code is not None else no_code
    reason = f"[{code}] {verdict.reason}" if code is not None else verdict.reason
    return StatusUpdate("failed", provider_id=provider_id, error=reason,
                        extra={**extra, "error_code": code}, **error_flags(verdict))


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
    verdict = classify(code) if code is not None else Verdict(
        RETRY, f"Twilio answered HTTP {http_status}")
    detail = twilio_message.removeprefix("Unable to create record: ")
    return ChannelError(f"{verdict.reason} (Twilio: {detail})",
                        code=str(code) if code is not None else None, **error_flags(verdict))


def valid_signature(auth_token: str, url: str, params: Mapping[str, Any],
                    signature: str | None) -> bool:
    """Whether ``X-Twilio-Signature`` matches; ``url`` must be the public URL Twilio called."""
    if not signature:
        return False
    return RequestValidator(auth_token).validate(url, params, signature)
