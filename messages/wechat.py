"""The WeChat renderings of an announcement: template-message fields and group-robot markdown.

Template messages follow WeChat's rules since 4 May 2023 (公告《关于规范公众号模板消息的再次公告》):
the old ``first`` and ``remark`` fields are no longer shown, so everything a resident must
see goes into keywords of a category template (类目模板), whose key names the value's type.
A ``thing`` value holds at most 20 characters and a ``time`` value is a 24-hour time with
its date ("2024年7月1日 15:01"); values must not contain line breaks (WeChat drops what
follows one) and a value over its limit makes WeChat refuse the message (errcode 47003).
So every value is flattened to one line and cut to its limit here, between user-perceived
characters (an emoji of many code points stays whole), ending with "…"; the link opens the
full text on the gateway.

WeCom group-robot markdown may hold at most 4096 bytes of UTF-8 (errcode 40058 beyond), so
the body is cut on a character boundary to fit, keeping the heading, instruction and link.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from messages import severity
from messages.graphemes import cut
from messages.phrases import marker, phrase
from messages.render_types import AnnouncementView, RenderContext, Rendered

#: The keys of the office's template in the Official Account console. An office whose
#: template numbers its keywords differently changes them here, and only here.
TEMPLATE_KEYS = {
    "title": "thing1",
    "time": "time2",
    "office": "thing3",
    "summary": "thing4",
    "instruction": "thing5",
}

#: Longest value, in characters, per template value type (the key without its number).
VALUE_LIMITS = {"thing": 20}

#: The least of a headline a title keeps when its warning colour is added before it.
HEADLINE_KEPT = 10
MARKDOWN_LIMIT_BYTES = 4096
ELLIPSIS = "…"


def render(announcement: AnnouncementView, language: str, context: RenderContext) -> Rendered:
    url = context.full_text_url(announcement.id)
    values = {
        "title": _title(announcement, language, TEMPLATE_KEYS["title"]),
        "time": _template_time(_issued_at(announcement), language, context),
        "office": context.office(language),
        "summary": announcement.body,
        "instruction": announcement.instruction,
    }
    template = {TEMPLATE_KEYS[role]: {"value": _fit(TEMPLATE_KEYS[role], value)}
                for role, value in values.items() if value}
    lines = [field["value"] for field in template.values()]
    lines.append(f"{phrase(language, 'details')}: {url}")
    return Rendered("wechat", language, "\n".join(lines), {"template": template, "url": url})


def render_group_markdown(announcement: AnnouncementView, language: str,
                          context: RenderContext) -> str:
    """One markdown post for a WeCom group robot, at most 4096 bytes of UTF-8."""
    colon = "：" if language == "zh" else ": "
    issued = _template_time(_issued_at(announcement), language, context)
    head = (f"### {marker(language, announcement.status, announcement.msg_type)}"
            f"{severity.tag(announcement, language)}{_one_line(announcement.headline)}\n"
            f"> {phrase(language, 'label.severity')}{colon}"
            f"{severity.label(announcement.severity, language)}\n"
            f"> {phrase(language, 'label.office')}{colon}{context.office(language)}\n"
            f"> {phrase(language, 'label.time')}{colon}{issued}\n\n")
    tail = f"\n\n[{phrase(language, 'details')}]({context.full_text_url(announcement.id)})"
    if announcement.instruction:
        tail = f"\n\n**{_one_line(announcement.instruction)}**" + tail
    room = MARKDOWN_LIMIT_BYTES - len(head.encode()) - len(tail.encode())
    return _cut_bytes(head + _cut_bytes(announcement.body, room) + tail, MARKDOWN_LIMIT_BYTES)


def _title(announcement: AnnouncementView, language: str, key: str) -> str:
    """The headline behind its drill or correction marker and its warning colour ("【红色预警】"
    unless the headline says it), cut so that the markers stay whole.

    (Only a marker longer than the whole field, as English ones can be, is cut itself.)
    """
    prefix = marker(language, announcement.status, announcement.msg_type)
    headline = _one_line(announcement.headline)
    limit = _limit(key)
    warning = severity.tag(announcement, language)
    # The warning colour only where it leaves room for the headline ("[Yellow warning] " would
    # leave an English headline three characters of the twenty).
    if limit is None or len(prefix + warning) + min(len(headline), HEADLINE_KEPT) <= limit:
        prefix += warning
    return prefix + (headline if limit is None else _cut(headline, max(limit - len(prefix), 1)))


def _fit(key: str, value: str) -> str:
    limit = _limit(key)
    value = _one_line(value)
    return value if limit is None else _cut(value, limit)


def _limit(key: str) -> int | None:
    return VALUE_LIMITS.get(key.rstrip("0123456789"))


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut between what a reader sees as characters."""
    return cut(text, limit, ELLIPSIS)


def _cut_bytes(text: str, limit: int) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    room = max(limit - len(ELLIPSIS.encode()), 0)
    # Decoding with "ignore" drops a character whose bytes the cut split.
    return encoded[:room].decode("utf-8", errors="ignore") + ELLIPSIS


def _issued_at(announcement: AnnouncementView) -> datetime:
    """When the announcement was issued: its CAP ``sent`` time when it has one, else now.

    A naive ``sent`` is taken as UTC, the ledger's clock.
    """
    sent = getattr(announcement, "sent", None) or datetime.now(timezone.utc)
    return sent if sent.tzinfo else sent.replace(tzinfo=timezone.utc)


def _template_time(moment: datetime, language: str, context: RenderContext) -> str:
    """A 24-hour time with its date in the office's time zone, as the template's ``time``
    value takes it: in Chinese words for Chinese cards, as numbers (``2026-12-02 10:58``)
    for English ones."""
    local = context.local_time(moment)
    if language == "en":
        return f"{local:%Y-%m-%d %H:%M}"
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def render_group(announcement: AnnouncementView, language: str, context: RenderContext) -> Rendered:
    """The group robot's post, as a ``Rendered`` like every other channel's."""
    return Rendered("wecom_robot", language, render_group_markdown(announcement, language, context))
