"""Public and partner channels in the pipeline: broadcasters, signed webhooks and Weibo.

They come with every notice, whatever channels it names (``channels.registry.PUBLIC_CHANNELS``),
as place channels: one delivery per destination serving one of the notice's areas
(``gateway.store.destinations.serving``), and one per notice for the office's Weibo account
when ``WEIBO_ACCESS_TOKEN`` is set. A drill goes only to test destinations and never to Weibo.
A correction goes wherever the original was handed over (``ledger.add_correction``).

The texts are made in ``messages`` (``gbt35965``, ``broadcast``, ``weibo``); what this module
adds from the database is what they cannot know: the areas' names, the notice a correction
replaces, and the code tables from configuration.
"""
from __future__ import annotations

import json

from flask import current_app
from sqlalchemy import Connection, and_, select

from channels.registry import PUBLIC_CHANNELS
from gateway.delivery import providers
from gateway.store import destinations
from gateway.store.db import as_utc, engine, utcnow
from gateway.store.schema import announcements, areas, deliveries
from gateway.store.schema import destinations as destinations_table
from messages import broadcast, weibo
from messages.gbt35965 import Codes, Reference, WarningDocument
from messages.render import Rendered, render

#: The Weibo account's one place: every notice's post goes there.
WEIBO_ADDRESS, WEIBO_RECIPIENT = "account", 0


def codes(config=None) -> Codes:
    config = config or current_app.config
    return Codes(office=config["BROADCAST_OFFICE_CODE"], organisation=config["BROADCAST_ORG_CODE"],
                 events=config["BROADCAST_EVENT_CODES"],
                 other_event=config["BROADCAST_OTHER_EVENT_CODE"])


def places(conn: Connection, announcement, config, *, drill: bool) -> list[tuple[str, int, str]]:
    """(channel, recipient id, address) of each public place this notice goes to."""
    rows = [(destinations.channel_of(row.kind), row.id, str(row.id))
            for row in destinations.serving(conn, json.loads(announcement.areas), drill=drill)]
    if not drill and providers.configured_provider(config, "weibo"):
        rows.append(("weibo", WEIBO_RECIPIENT, WEIBO_ADDRESS))
    return rows


def channels(conn: Connection, announcement, config, *, drill: bool) -> set[str]:
    return {channel for channel, _, _ in places(conn, announcement, config, drill=drill)}


def summary(conn: Connection, announcement_id: int) -> list[dict]:
    """Each public place the notice went to and how its delivery ended, for the disclosure
    report: the destination's name and kind (Weibo's own), status, tries and last error."""
    rows = conn.execute(
        select(deliveries.c.channel, deliveries.c.status, deliveries.c.attempts,
               deliveries.c.last_error, destinations_table.c.name, destinations_table.c.kind)
        .select_from(deliveries.outerjoin(destinations_table, and_(
            deliveries.c.recipient_id == destinations_table.c.id,
            deliveries.c.channel != "weibo")))
        .where(deliveries.c.announcement_id == announcement_id,
               deliveries.c.channel.in_(PUBLIC_CHANNELS))
        .order_by(deliveries.c.channel, deliveries.c.recipient_id)).all()
    return [{"channel": row.channel, "name": row.name or "", "kind": row.kind or row.channel,
             "status": row.status, "tries": row.attempts, "error": row.last_error or ""}
            for row in rows]


def rendered(announcement, channel: str, language: str) -> Rendered:
    """The notice (in ``language``, as ``lifecycle.in_language`` gives it) for a public channel."""
    config = current_app.config
    context = providers.render_context()
    if channel == "weibo":
        return weibo.render(announcement, language, context, config["WEIBO_MAX_CHARACTERS"])
    with engine().connect() as conn:
        document = warning_document(conn, announcement, language)
    shown = broadcast.render_broadcast(announcement, document, codes(config), context,
                                       config["BROADCAST_CRAWL_LENGTH"])
    if channel == "broadcast":
        return shown
    base = config["PUBLIC_BASE_URL"].rstrip("/")
    return broadcast.render_webhook(announcement, shown, document,
                                    cap_url=f"{base}/api/v1/announcements/{announcement.id}.cap",
                                    sms=render(announcement, "sms", language, context))


def warning_document(conn: Connection, announcement, language: str) -> WarningDocument:
    codes_ = json.loads(announcement.areas)
    names = {row.code: row.name for row in conn.execute(
        select(areas.c.code, areas.c.name).where(areas.c.code.in_(codes_)))}
    reference = None
    if announcement.supersedes_id:
        original = conn.execute(select(announcements.c.id, announcements.c.sent,
                                       announcements.c.created_at)
                                .where(announcements.c.id == announcement.supersedes_id)).first()
        reference = Reference(original.id, as_utc(original.sent or original.created_at))
    return WarningDocument(
        announcement_id=announcement.id, sent=as_utc(announcement.sent) or utcnow(),
        status=announcement.status, msg_type=announcement.msg_type,
        sender_name=current_app.config["OFFICE_NAME"], event=announcement.event,
        urgency=announcement.urgency, severity=announcement.severity,
        certainty=announcement.certainty, headline=announcement.headline,
        description=announcement.body, language=language,
        areas=[(code, names.get(code, code)) for code in codes_],
        instruction=announcement.instruction, expires=as_utc(announcement.expires),
        web=providers.render_context().full_text_url(announcement.id), reference=reference)

