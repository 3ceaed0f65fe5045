"""SMS over Twilio's Programmable Messaging.

Settings: ``account_sid``, ``auth_token``, ``from_number`` or
``messaging_service_sid``, optional ``api_base``, ``timeout`` and
``rate_per_second`` (see ``channels.twilio_common``).

Twilio posts status changes to ``Outgoing.callback_url`` (``parse_callback``)
and residents' replies to the number's inbound webhook (``parse_inbound``).
Both are plain functions: a webhook parses a form without building a client.
"""
from __future__ import annotations

import unicodedata
from typing import Any, Mapping

import requests
from twilio.base.exceptions import TwilioException

from channels.base import Channel, Outgoing, Receipt, StatusUpdate
from channels.twilio_common import (RETRY, Verdict, build_client, channel_error, close_client,
                                    failed_update)

#: Twilio's MessageStatus -> ledger status, for the statuses that are not failures.
#: ``partially_delivered`` (one of the Message resource's statuses, twilio 9.x
#: ``MessageInstance.Status``: of a message in several parts, some were confirmed
#: delivered and some not) counts as delivered: the resident has part of it, the
#: start first, and sending it again would repeat what arrived.
_PROGRESS = {
    "accepted": "sent",
    "scheduled": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "partially_delivered": "delivered",
}
#: Failures; their ``ErrorCode`` decides retry, fail the channel or invalid number.
#: ``canceled`` (the Message resource: a scheduled message whose sending was
#: canceled before it went out; the gateway never cancels one itself) comes with no code: nothing reached the resident and it is not
#: their number's fault, so it is retried like any transient failure.
_FAILURES = {
    "undelivered": Verdict(RETRY, "undelivered, Twilio gave no reason"),
    "failed": Verdict(RETRY, "failed, Twilio gave no reason"),
    "canceled": Verdict(RETRY, "the message was canceled before it was sent"),
}

# Twilio itself stops messaging a number after its standard opt-out words, so
# the ledger must treat them as opt-outs too; TD and 退订 are China's convention.
OPT_OUT_WORDS = frozenset({"TD", "退订", "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END",
                           "QUIT", "OPTOUT", "REVOKE"})
CONFIRM_WORDS = frozenset({"1"})


class TwilioSmsChannel(Channel):
    name = "sms"
    rate_per_second = 1.0  # one segment a second on a long code

    def __init__(self, settings: Mapping[str, Any] | None = None):
        super().__init__(settings)
        self.client = build_client(self.settings)
        self.sender = _sender(self.settings)
        self.rate_per_second = float(self.settings.get("rate_per_second")
                                     or type(self).rate_per_second)

    def send(self, message: Outgoing) -> Receipt:
        try:
            created = self.client.messages.create(
                to=message.address, body=message.rendered.text,
                status_callback=message.callback_url, **self.sender)
        except (TwilioException, requests.RequestException) as error:
            raise channel_error(error) from error
        return Receipt(provider_id=created.sid, status="sent",
                       detail=f"Twilio {created.status}, {created.num_segments} segment(s)")

    def close(self) -> None:
        close_client(self.client)


def _sender(settings: Mapping[str, Any]) -> dict[str, str]:
    if settings.get("messaging_service_sid"):
        return {"messaging_service_sid": settings["messaging_service_sid"]}
    if settings.get("from_number"):
        return {"from_": settings["from_number"]}
    raise ValueError("Twilio SMS needs 'from_number' or 'messaging_service_sid'")


def parse_callback(params: Mapping[str, Any]) -> StatusUpdate | None:
    """The ledger update a message's status callback means; ``None`` for one that means none."""
    twilio_status = params.get("MessageStatus") or params.get("SmsStatus")
    sid = params.get("MessageSid") or params.get("SmsSid")
    if twilio_status in _PROGRESS:
        return StatusUpdate(_PROGRESS[twilio_status], provider_id=sid)
    if twilio_status in _FAILURES:
        return failed_update(sid, params.get("ErrorCode"), no_code=_FAILURES[twilio_status],
                             extra={"twilio_status": twilio_status})
    return None


def parse_inbound(params: Mapping[str, Any]) -> tuple[str, str]:
    """(sender's number, intent) of a reply: ``confirm``, ``opt_out`` or ``other``.

    Full-width characters are folded (``１`` is ``1``, ``ｔｄ`` is ``TD``), case,
    surrounding spaces and a trailing full stop are ignored.
    """
    text = unicodedata.normalize("NFKC", params.get("Body") or "")
    word = text.strip().rstrip("。.!").strip().upper()
    if word in CONFIRM_WORDS:
        intent = "confirm"
    elif word in OPT_OUT_WORDS:
        intent = "opt_out"
    else:
        intent = "other"
    return params.get("From", ""), intent
