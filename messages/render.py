"""One announcement rendered for one channel and language.

Every channel's text is made here (and in the per-channel modules beside it),
so the console's preview, the outbox and the real providers all show the same
words. Renderers take an announcement-like object (``AnnouncementView``) and a
``RenderContext``; they never read configuration themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol


class AnnouncementView(Protocol):
    id: int
    headline: str
    body: str
    instruction: str
    status: str
    msg_type: str
    severity: str
    language: str


@dataclass(frozen=True)
class RenderContext:
    office_name: str = "县人民政府信息办"
    sms_signature: str = "县人民政府"
    public_base_url: str = "http://127.0.0.1:5000"
    audio_url: str | None = None  # the synthesized speech, when there is one
    audio_sha256: str | None = None  # loudspeakers check the audio they download against it

    def full_text_url(self, announcement_id: int) -> str:
        return f"{self.public_base_url.rstrip('/')}/a/{announcement_id}"


@dataclass(frozen=True)
class Rendered:
    channel: str
    language: str
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)


Renderer = Callable[[AnnouncementView, str, RenderContext], Rendered]


def _renderers() -> dict[str, Renderer]:
    from messages import sms, speech, wechat

    return {
        "sms": sms.render,
        "voice": speech.render_call,
        "wechat": wechat.render,
        "wecom_robot": wechat.render_group,
        "loudspeaker": speech.render_broadcast,
    }


def render(announcement: AnnouncementView, channel: str, language: str,
           context: RenderContext) -> Rendered:
    try:
        renderer = _renderers()[channel]
    except KeyError:
        raise ValueError(f"no renderer for channel {channel!r}") from None
    return renderer(announcement, language, context)
