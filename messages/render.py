"""One announcement rendered for one channel and language.

Every channel's text is made here (and in the per-channel modules beside it),
so the console's preview, the outbox and the real providers all show the same
words. Renderers take an announcement-like object (``AnnouncementView``) and a
``RenderContext``; they never read configuration themselves. The types live in
``messages.render_types`` and are imported here too, so callers may keep
importing them from this module.
"""
from __future__ import annotations

from typing import Callable

from messages import sms, speech, wechat
from messages.render_types import AnnouncementView, RenderContext, Rendered

Renderer = Callable[[AnnouncementView, str, RenderContext], Rendered]

RENDERERS: dict[str, Renderer] = {
    "sms": sms.render,
    "voice": speech.render_call,
    "wechat": wechat.render,
    "wecom_robot": wechat.render_group,
    "loudspeaker": speech.render_broadcast,
}


def render(announcement: AnnouncementView, channel: str, language: str,
           context: RenderContext) -> Rendered:
    try:
        renderer = RENDERERS[channel]
    except KeyError:
        raise ValueError(f"no renderer for channel {channel!r}") from None
    return renderer(announcement, language, context)
