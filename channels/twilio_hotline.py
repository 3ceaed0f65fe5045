"""The notice hotline's TwiML: what a call that comes in to the office's number hears.

The words are made in ``messages.hotline`` and the notices are the recordings of
``messages.speech``; this module only puts them into TwiML, with Twilio's own speech
(the same voices as the outgoing calls, ``twilio_voice.SAY_VOICES``) for text that has
no recording. Twilio posts the keys of each ``<Gather>`` to its ``action`` URL, signed
like every webhook; ``pressed`` reads them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from twilio.twiml.voice_response import VoiceResponse

from channels.twilio_voice import SAY_UTF8_BYTES, clip_utf8, say


@dataclass(frozen=True)
class Spoken:
    """One thing a caller hears: a recording when ``audio_url`` is set, else Twilio's speech
    of ``text`` in ``language``."""

    text: str
    language: str
    audio_url: str | None = None


@dataclass(frozen=True)
class Ask:
    """A question answered with keys: at most ``digits`` of them (more than one may end
    early with #), posted to ``action_url``; with none after ``seconds``, posted empty.
    A key pressed while ``prompt`` is heard (a notice, then its choices) stops it at once."""

    prompt: Sequence[Spoken]
    action_url: str
    digits: int = 1
    seconds: int = 8


def twiml(heard: Sequence[Spoken], *, ask: Ask | None = None, dial: str | None = None) -> str:
    """What the caller hears, then a question, a transfer to ``dial``, or the end of the call."""
    response = VoiceResponse()
    for spoken in heard:
        _speak(response, spoken)
    if ask is not None:
        gather = response.gather(num_digits=ask.digits, action=ask.action_url, method="POST",
                                 timeout=ask.seconds, finish_on_key="#",
                                 action_on_empty_result=True)
        for spoken in ask.prompt:
            _speak(gather, spoken)
    elif dial:
        response.dial(dial)
    if ask is None:
        response.hangup()  # after the transfer ends, or at once
    return str(response)


def pressed(params: Mapping[str, Any]) -> str:
    """The keys a caller pressed, without the # that ended them; ``""`` for none."""
    return (params.get("Digits") or "").strip().removesuffix("#")


def _speak(verb: Any, spoken: Spoken) -> None:
    if spoken.audio_url:
        verb.play(spoken.audio_url)
    elif spoken.text:
        say(verb, clip_utf8(spoken.text, SAY_UTF8_BYTES), spoken.language)
