"""The SMS text of an announcement."""
from __future__ import annotations

from messages.phrases import marker, phrase
from messages.render import AnnouncementView, RenderContext, Rendered


def render(announcement: AnnouncementView, language: str, context: RenderContext) -> Rendered:
    signature = f"【{context.sms_signature}】" if context.sms_signature else ""
    parts = [signature + marker(language, announcement.status, announcement.msg_type)
             + announcement.headline, announcement.body]
    if announcement.instruction:
        parts.append(announcement.instruction)
    parts.append(f"{phrase(language, 'details')}: {context.full_text_url(announcement.id)}")
    text = " ".join(part for part in parts if part)
    return Rendered("sms", language, text)
