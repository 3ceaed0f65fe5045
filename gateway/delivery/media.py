"""Speech audio for calls and loudspeakers, made once per announcement, language and voice.

A call is read by the voice of the resident's spoken language (``SPEECH_VOICES``) when it
reads the text's language — a Cantonese speaker hears the Chinese text in Cantonese —
and otherwise by the text's own language's voice, a fallback the preview counts
(``messages.audio.choose_voice``). A loudspeaker plays the languages its village speaks,
in turn (``broadcast_for``, ``gateway.store.speakers``), else the announcement's language.

The file is synthesized the first time a voice or loudspeaker job needs it and
reused by every call and broadcast after that; the web layer serves it at
``/media/<name>``. When synthesis fails, calls fall back to the provider's own
text-to-speech and loudspeakers to the text, rather than not going out.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Collection, Mapping, Sequence

from flask import current_app

from channels.registry import PUBLIC_CHANNELS
from gateway.delivery import providers, public_channels
from messages import audio, speech
from messages.languages import macrolanguage
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


def text_language_for(spoken_language: str, written_in: Collection[str], own: str) -> str:
    """The text a loudspeaker reads to listeners of ``spoken_language``: the one in their
    language, else one in its macrolanguage (Cantonese and Hakka listeners hear the Chinese
    text, which their voices read), else the announcement's ``own``."""
    for language in (spoken_language, macrolanguage(spoken_language)):
        if language in written_in:
            return language
    return own


def broadcast_for(texts: Mapping[str, object], own: str,
                  spoken_languages: Sequence[str]) -> Rendered:
    """A loudspeaker's play for a village of ``spoken_languages`` (in order; none: the
    announcement's ``own``), from the announcement's ``texts`` by language: one audio per
    language (its text, ``text_language_for``, read by ``voice_for``), the first the play's
    own and the others ``data["followed_by"]``. Two languages that would sound the same (a
    Zhuang village with no Zhuang voice hears Mandarin) play once; a further language whose
    speech could not be made is left out, so the village still hears the first."""
    parts: dict[tuple[str, str | None], Rendered] = {}
    for spoken in spoken_languages or (own,):
        text_language = text_language_for(spoken, texts, own)
        try:
            voice = voice_for(spoken, text_language)
        except audio.SynthesisError:
            voice = None
        key = (text_language, voice.name if voice else None)
        if key not in parts:
            parts[key] = replace(rendered_for(texts[text_language], "loudspeaker", text_language,
                                              spoken),
                                 language=voice.language if voice else text_language)
    first, *further = parts.values()
    followed_by = [{"language": part.language, "text": part.text,
                    "audio_url": part.data["audio_url"], "audio_sha256": part.data["audio_sha256"]}
                   for part in further if part.data.get("audio_url")]
    if len(followed_by) < len(further):
        log.warning("no speech for %d of a loudspeaker's languages; they are left out",
                    len(further) - len(followed_by))
    return replace(first, data={**first.data, "followed_by": followed_by}) if followed_by else first
