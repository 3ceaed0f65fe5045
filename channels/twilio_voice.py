"""Voice calls over Twilio: play the notice, then ask for 1 to confirm.

Every word said on the call, the notice and the prompts around it, is made in
``messages.speech``; this module only puts it into TwiML.

Settings: ``account_sid``, ``auth_token``, ``from_number``, optional
``api_base``, ``timeout``, ``rate_per_second`` (see ``channels.twilio_common``),
``ring_seconds`` (how long a call rings, default 30), ``gather_seconds`` (how
long to wait for a key, default 8) and ``time_limit`` (the longest a call may
last, default 900 s; it also bounds a resident who presses 2 forever).

Webhook URLs. ``Outgoing.callback_url`` receives the call's status callbacks
as it is. The keypress goes to the *gather URL*: the same URL with the query
parameters ``event=gather`` and ``attempt=<n>`` set (``gather_url``), so one
gateway route, which already knows the delivery from the URL, serves both:
``event=gather`` -> ``parse_gather`` and answer with ``gather_twiml``;
otherwise -> ``parse_callback``. Twilio signs both with the full URL. Both
parsers are plain functions: a webhook needs no client to read a form.

``attempt`` counts plays that went unanswered in a row: no key after the first
play replays once, no key after the second hangs up; pressing 2 replays and
starts the count again. Any other key counts as no key.
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException
from twilio.twiml.voice_response import VoiceResponse

from channels.base import Channel, Outgoing, Receipt, StatusUpdate
from channels.twilio_common import (RETRY, Verdict, build_client, channel_error, close_client,
                                    failed_update)
from messages.phrases import wording_language
from messages.speech import call_prompts

#: language -> (Say's language, a Twilio voice that speaks it); a text in another language
#: is said by the voice of its fixed words' language (``phrases.wording_language``).
#: A Polly voice takes Amazon Polly's own language code: Zhiyu, Polly's Mandarin voice, is
#: ``cmn-CN`` (https://docs.aws.amazon.com/polly/latest/dg/available-voices.html), not ``zh-CN``.
SAY_VOICES = {"zh": ("cmn-CN", "Polly.Zhiyu"), "en": ("en-US", "Polly.Joanna")}
#: TwiML given with a call may be at most 4,000 characters, or the call fails with
#: error 32018 (https://www.twilio.com/docs/api/errors/32018).
CALL_TWIML_CHARACTERS = 4000
#: A Polly voice's <Say> text may be at most 3,000 bytes of UTF-8 (warning 13521,
#: https://www.twilio.com/docs/api/errors/13521; basic voices 4,096, Google 5,000).
SAY_UTF8_BYTES = 3000
STATUS_EVENTS = ["answered", "completed"]
UNANSWERED_PLAYS_BEFORE_HANGUP = 2
RING_SECONDS = 30
TIME_LIMIT_SECONDS = 900
#: The longest a call can hold a line with the default settings: it rings, then lasts at most
#: the time limit.
LONGEST_CALL_SECONDS = RING_SECONDS + TIME_LIMIT_SECONDS

#: Twilio CallStatus -> (ledger status, permanent, outcome)
_CALL_STATUSES = {
    "queued": ("sent", True, "calling"),
    "initiated": ("sent", True, "calling"),
    "ringing": ("sent", True, "ringing"),
    "in-progress": ("sent", True, "answered"),
    "completed": ("delivered", True, "completed-not-confirmed"),
    "busy": ("failed", False, "busy"),
    "no-answer": ("failed", False, "no-answer"),
    "failed": ("failed", True, "failed"),
    "canceled": ("failed", True, "canceled"),
}
#: The CallStatus values after which the call is over.
FINAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")


class TwilioVoiceChannel(Channel):
    name = "voice"
    rate_per_second = 1.0  # Twilio's default calls per second per account

    def __init__(self, settings: Mapping[str, Any] | None = None):
        super().__init__(settings)
        self.client = build_client(self.settings)
        if not self.settings.get("from_number"):
            raise ValueError("Twilio voice needs 'from_number'")
        self.rate_per_second = float(self.settings.get("rate_per_second")
                                     or type(self).rate_per_second)
        self.gather_seconds = int(self.settings.get("gather_seconds") or 8)
        self.ring_seconds = int(self.settings.get("ring_seconds") or RING_SECONDS)
        self.time_limit = int(self.settings.get("time_limit") or TIME_LIMIT_SECONDS)

    def send(self, message: Outgoing) -> Receipt:
        if not message.callback_url:
            raise ValueError("a call needs a callback URL to hear the resident's key")
        rendered = message.rendered
        twiml = call_twiml(rendered.data.get("audio_url"), say_text(rendered), rendered.language,
                           gather_url(message.callback_url, 1), self.gather_seconds)
        try:
            call = self.client.calls.create(
                to=message.address, from_=self.settings["from_number"], twiml=twiml,
                status_callback=message.callback_url, status_callback_event=STATUS_EVENTS,
                timeout=self.ring_seconds, time_limit=self.time_limit)
        except (TwilioException, requests.RequestException) as error:
            raise channel_error(error) from error
        return Receipt(provider_id=call.sid, status="sent", detail=f"Twilio {call.status}")

    def close(self) -> None:
        close_client(self.client)


def parse_callback(params: Mapping[str, Any]) -> StatusUpdate | None:
    """The ledger update a call's status callback means; ``None`` for an unknown status."""
    try:
        status, permanent, outcome = _CALL_STATUSES[params.get("CallStatus")]
    except KeyError:
        return None
    extra = {"outcome": outcome, "duration": params.get("CallDuration")}
    if params.get("CallStatus") == "failed":
        # Classified by its ErrorCode like any Twilio error: 20429 or 30003 is
        # tried again, 21211 marks the number invalid, and no code is transient.
        return failed_update(params.get("CallSid"), params.get("ErrorCode"),
                             no_code=Verdict(RETRY, "the call failed, Twilio gave no reason"),
                             extra=extra)
    return StatusUpdate(status, provider_id=params.get("CallSid"),
                        error=outcome if status == "failed" else None, permanent=permanent,
                        extra=extra)


def parse_gather(params: Mapping[str, Any]) -> StatusUpdate | None:
    """A confirmation when the resident pressed 1; ``None`` for any other key."""
    if (params.get("Digits") or "").strip() != "1":
        return None
    return StatusUpdate("confirmed", provider_id=params.get("CallSid"),
                        extra={"outcome": "completed-and-confirmed"})


def gather_url(callback_url: str, attempt: int) -> str:
    """``callback_url`` with ``event=gather`` and ``attempt`` set, other parameters kept."""
    parts = urlsplit(callback_url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
             if key not in ("event", "attempt")]
    query += [("event", "gather"), ("attempt", str(attempt))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def say_text(rendered: Any) -> str:
    """What Twilio's own speech says of a notice when there is no recording: the short
    script (headline, instruction, "the rest is in the SMS") the message was rendered with."""
    return rendered.data.get("say_text") or rendered.text


def call_twiml(audio_url: str | None, text: str, language: str, action_url: str,
               gather_seconds: int = 8) -> str:
    """The notice (the recording, or Twilio's speech of ``text`` when there is none), then
    the question; within Twilio's limits for <Say> and for TwiML sent with a call, ``text``
    cut at the end if it must be."""
    text = clip_utf8(text, SAY_UTF8_BYTES)
    while True:
        response = VoiceResponse()
        if audio_url:
            response.play(audio_url)
        else:
            say(response, text, language)
        gather = response.gather(num_digits=1, action=action_url, method="POST",
                                 timeout=gather_seconds, action_on_empty_result=True)
        say(gather, call_prompts(language).question, language)
        twiml = str(response)
        excess = len(twiml) - CALL_TWIML_CHARACTERS
        if excess <= 0 or audio_url or not text:
            return twiml
        text = text[:max(0, len(text) - excess)]  # escaping (&amp;) may need one more round


def gather_twiml(digit: str | None, audio_url: str | None, text: str, language: str,
                 callback_url: str, attempt: int, gather_seconds: int = 8) -> str:
    """The answer to a gather webhook.

    ``callback_url`` may be the delivery's callback URL or the gather URL
    itself: ``event`` and ``attempt`` are replaced either way.
    """
    digit = (digit or "").strip()
    if digit == "1":
        return _hang_up_after(call_prompts(language).thanks, language)
    if digit == "2":
        return call_twiml(audio_url, text, language, gather_url(callback_url, 1), gather_seconds)
    if attempt < UNANSWERED_PLAYS_BEFORE_HANGUP:
        return call_twiml(audio_url, text, language, gather_url(callback_url, attempt + 1),
                          gather_seconds)
    return _hang_up_after(call_prompts(language).goodbye, language)


def clip_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, at a whole character."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def say(verb: Any, text: str, language: str) -> None:
    """Add ``<Say>`` of ``text`` to ``verb`` in Twilio's voice for the text's fixed words."""
    say_language, voice = SAY_VOICES[wording_language(language)]
    verb.say(text, language=say_language, voice=voice)


def _hang_up_after(text: str, language: str) -> str:
    response = VoiceResponse()
    say(response, text, language)
    response.hangup()
    return str(response)
