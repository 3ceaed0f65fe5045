"""The WeChat template-message fields of an announcement."""
from __future__ import annotations

from messages.phrases import marker
from messages.render import AnnouncementView, RenderContext, Rendered


def render(announcement: AnnouncementView, language: str, context: RenderContext) -> Rendered:
    title = marker(language, announcement.status, announcement.msg_type) + announcement.headline
    fields = {
        "first": title,
        "keyword1": context.office_name,
        "keyword2": announcement.body,
        "remark": announcement.instruction,
    }
    text = "\n".join(value for value in fields.values() if value)
    return Rendered("wechat", language, text,
                    {"fields": fields, "url": context.full_text_url(announcement.id)})
