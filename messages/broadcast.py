"""What goes to broadcasters and partner systems: the TV crawl line, the radio script, the
GB/T 35965.1 document (``messages.gbt35965``) and the JSON body of a signed webhook.

* **Crawl** (滚动字幕): one line, at most ``length`` characters (``BROADCAST_CRAWL_LENGTH``),
  opening with the drill or correction marker and the warning colour (【红色预警】), then the
  headline, the body and the instruction as far as they fit, ending in "…" when cut.
* **Radio script**: what a presenter or the station's speech system reads, the same script
  the loudspeakers play (``messages.speech.script``: who speaks, drill markers, twice).
* **Webhook body**: the notice's fields, these renderings, its CAP and public URLs.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from messages import gbt35965, severity, speech
from messages.graphemes import cut
from messages.phrases import marker
from messages.render_types import AnnouncementView, RenderContext, Rendered

DEFAULT_CRAWL_LENGTH = 60
#: The webhook body's version, so receivers can tell a later shape apart.
WEBHOOK_SCHEMA = "tongbao.notice/1"


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def fit_line(head: str, rest: list[str], tail: str, limit: int) -> str:
    """``head`` + as much of ``rest`` as fits + ``tail``, at most ``limit`` characters; the
    head and tail are kept whole (the warning colour, a link), the middle is cut."""
    middle = one_line(" ".join(part for part in rest if part))
    room = limit - len(head) - len(tail)
    if room < 2:  # not even one character and the ellipsis: the head alone, cut
        return cut(head + tail, limit)
    return head + cut(middle, room) + tail


def crawl(announcement: AnnouncementView, language: str, length: int = DEFAULT_CRAWL_LENGTH) -> str:
    head = one_line(marker(language, announcement.status, announcement.msg_type)
                    + severity.tag(announcement, language) + announcement.headline)
    separator = "：" if language == "zh" else ": "
    rest = [announcement.body, announcement.instruction]
    return fit_line(head + separator if any(rest) else head, rest, "", length)


def radio_script(announcement: AnnouncementView, language: str, context: RenderContext) -> str:
    return speech.script(announcement, language, context)


def render_broadcast(announcement: AnnouncementView, document: gbt35965.WarningDocument,
                     codes: gbt35965.Codes, context: RenderContext,
                     crawl_length: int = DEFAULT_CRAWL_LENGTH) -> Rendered:
    """What a broadcaster gets: the document as the text, the crawl and script beside it."""
    language = document.language
    xml = gbt35965.to_document(document, codes)
    return Rendered("broadcast", language, xml.decode("utf-8"), {
        "identifier": gbt35965.identifier(codes, document.announcement_id, document.sent),
        "crawl": crawl(announcement, language, crawl_length),
        "radio_script": radio_script(announcement, language, context)})


def render_webhook(announcement: AnnouncementView, broadcast: Rendered, document:
                   gbt35965.WarningDocument, *, cap_url: str, sms: Rendered) -> Rendered:
    """The JSON body of a signed webhook (as a mapping in ``data``; the channel encodes it)."""
    body: Mapping[str, Any] = {
        "schema": WEBHOOK_SCHEMA,
        "notice": {
            "id": document.announcement_id,
            "identifier": broadcast.data["identifier"],
            "status": document.status, "msg_type": document.msg_type,
            "references": (None if document.reference is None
                           else document.reference.announcement_id),
            "severity": document.severity, "colour": gbt35965.colour(document.severity),
            "event": document.event, "headline": document.headline,
            "body": announcement.body, "instruction": document.instruction,
            "language": document.language, "sent": gbt35965.beijing_time(document.sent),
            "expires": document.expires and gbt35965.beijing_time(document.expires),
            "areas": [{"code": code, "name": name} for code, name in document.areas],
        },
        "renderings": {"sms": sms.text, "crawl": broadcast.data["crawl"],
                       "radio_script": broadcast.data["radio_script"],
                       "gbt35965": broadcast.text},
        "cap_url": cap_url,
        "public_url": document.web,
    }
    return Rendered("webhook", document.language, broadcast.data["crawl"], {"body": body})
