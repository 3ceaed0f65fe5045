"""What is spoken on a call and over a village loudspeaker."""
from __future__ import annotations

from messages.phrases import phrase
from messages.render import AnnouncementView, RenderContext, Rendered


def script(announcement: AnnouncementView, language: str, context: RenderContext) -> str:
    drill = ""
    if announcement.status in ("test", "exercise"):
        drill = phrase(language, f"drill.spoken.{announcement.status}")
    once = " ".join(part for part in (drill, announcement.headline, announcement.body,
                                      announcement.instruction, drill) if part)
    opening = context.office_name + ("通知：" if language == "zh" else ": ")
    return f"{opening}{once} {phrase(language, 'repeat')} {once}"


def render_call(announcement: AnnouncementView, language: str, context: RenderContext) -> Rendered:
    return Rendered("voice", language, script(announcement, language, context),
                    {"audio_url": context.audio_url})


def render_broadcast(announcement: AnnouncementView, language: str,
                     context: RenderContext) -> Rendered:
    return Rendered("loudspeaker", language, script(announcement, language, context),
                    {"audio_url": context.audio_url,
                     "drill": announcement.status in ("test", "exercise")})
