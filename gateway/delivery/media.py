"""Speech audio for calls and loudspeakers, made once per announcement, language and voice.

A call is read by the voice of the resident's spoken language (``SPEECH_VOICES``) when it
reads the text's language — a Cantonese speaker hears the Chinese text in Cantonese —
and otherwise by the text's own language's voice, a fallback the preview counts
(``messages.audio.choose_voice``). Loudspeakers play the announcement's language.

The file is synthesized the first time a voice or loudspeaker job needs it and
reused by every call and broadcast after that; the web layer serves it at
``/media/<name>``. When synthesis fails, calls fall back to the provider's own
text-to-speech and loudspeakers to the text, rather than not going out.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from flask import current_app

from channels.registry import PUBLIC_CHANNELS
from gateway.delivery import providers, public_channels
from messages import audio, speech
from messages.render import RenderContext, Rendered, render

log = logging.getLogger(__name__)
SPOKEN_CHANNELS = ("voice", "loudspeaker")


def audio_url(name: str) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/media/{name}"


def voice_for(spoken_language: str | None, text_language: str) -> audio.Voice:
    """Who reads a text in ``text_language`` to a listener of ``spoken_language`` (``None``:
    the text's own), with the configured voices."""
    return audio.choose_voice(spoken_language or text_language, text_language,
                              current_app.config["SPEECH_VOICES"])


def context_with_audio(announcement, language: str, spoken_language: str | None = None, *,
                       synthesize: bool = True) -> RenderContext:
    """The render context, with the checked speech file of this announcement when there is one;
    made now when there is none, unless not ``synthesize`` (the hotline: a caller waits)."""
    context = providers.render_context()
    text = speech.script(announcement, language, context)
    find = audio.ensure_audio if synthesize else audio.existing_audio
    try:
        voice = voice_for(spoken_language, language)
        info = find(current_app.config["MEDIA_DIR"], announcement.id, language, text,
                    rate=current_app.config["SPEECH_RATE"], voice=voice.name)
    except audio.SynthesisError:
        log.exception("speech synthesis failed for announcement %s (%s); sending text",
                      announcement.id, language, extra={"announcement_id": announcement.id})
        return context
    if info is None:
        return context
    return replace(context, audio_url=audio_url(info.path.name), audio_sha256=info.sha256)


def rendered_for(announcement, channel: str, language: str,
                 spoken_language: str | None = None, *, synthesize: bool = True) -> Rendered:
    """The announcement rendered for a channel in ``language``; a call's audio in the voice of
    ``spoken_language`` (see ``voice_for``), made now if need be unless not ``synthesize``."""
    if channel in PUBLIC_CHANNELS:  # documents and posts that need the database too
        return public_channels.rendered(announcement, channel, language)
    context = (context_with_audio(announcement, language, spoken_language, synthesize=synthesize)
               if channel in SPOKEN_CHANNELS else providers.render_context())
    return render(announcement, channel, language, context)
