"""The post on the office's Weibo account: one text within Weibo's limit, with the link to
the notice's public page.

statuses/share takes "不超过140个汉字" and the text must contain a URL of the app's bound
domain (https://open.weibo.com/wiki/2/statuses/share), so the link is never cut: it closes
the post, and the headline (after the drill or correction marker and the warning colour)
and then the body and instruction are cut to what room is left. Every character counts as
one here, though Weibo counts two Latin letters as one 汉字: a post that fits here fits
there. A ``#`` would open a topic (话题), which statuses/share refuses, so it is written as
the full-width ＃.
"""
from __future__ import annotations

from messages import severity
from messages.broadcast import fit_line, one_line
from messages.phrases import marker, phrase
from messages.render_types import AnnouncementView, RenderContext, Rendered

MAX_CHARACTERS = 140


def render(announcement: AnnouncementView, language: str, context: RenderContext,
           limit: int = MAX_CHARACTERS) -> Rendered:
    def clean(text: str) -> str:
        return one_line(text).replace("#", "＃")

    head = clean(marker(language, announcement.status, announcement.msg_type)
                 + severity.tag(announcement, language) + announcement.headline) + " "
    link = f" {phrase(language, 'details')}: {context.full_text_url(announcement.id)}"
    text = fit_line(head, [clean(announcement.body), clean(announcement.instruction)], link,
                    limit)
    if not text.endswith(link):  # a head too long for the limit: the link is what must stay
        text = fit_line("", [head], link, limit)
    return Rendered("weibo", language, text, {"limit": limit})
