"""The pull form for broadcasters: ``GET /feeds/destinations/<n>/alerts.xml`` with
``Authorization: Bearer <feed token>`` answers the notices in force for that destination's
area, each a GB/T 35965.1 document (``<alert>``) inside one ``<alerts>`` element, newest first.

In force: sending or sent, not expired, not withdrawn (a cancelled or superseded notice
leaves the feed; its correction is a notice of its own); ``actual`` ones, and drills too for
a test destination. A token is the destination's own: another's token, or none, is a 401.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from flask import Blueprint, Response, request
from sqlalchemy import or_, select

from gateway.delivery import public_channels
from gateway.store import destinations
from gateway.store.db import engine, utcnow
from gateway.store.schema import announcements
from messages import gbt35965

bp = Blueprint("destination_feed", __name__)
FEED_SIZE = 50
IN_FORCE = ("sending", "done")


@bp.get("/feeds/destinations/<int:destination_id>/alerts.xml")
def destination_feed(destination_id: int):
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else ""
    with engine().connect() as conn:
        destination = destinations.by_feed_token(conn, token)
        if destination is None or destination.id != destination_id:
            return Response("send this destination's feed token as 'Authorization: Bearer "
                            "<token>'\n", 401, {"WWW-Authenticate": "Bearer"}, mimetype="text/plain")
        statuses = ("actual", "exercise", "test") if destination.test_destination else ("actual",)
        rows = conn.execute(
            select(announcements)
            .where(announcements.c.status.in_(statuses), announcements.c.state.in_(IN_FORCE),
                   announcements.c.msg_type != "cancel",
                   or_(announcements.c.expires.is_(None), announcements.c.expires > utcnow()))
            .order_by(announcements.c.sent.desc(), announcements.c.id.desc())).all()
    feed = ET.Element("alerts", updated=gbt35965.beijing_time(utcnow()))
    for row in [row for row in rows if destinations.covers(destination, json.loads(row.areas))][
            :FEED_SIZE]:
        rendered = public_channels.rendered(row, "broadcast", row.language)
        feed.append(ET.fromstring(rendered.text.encode("utf-8")))
    ET.indent(feed)
    return Response(ET.tostring(feed, encoding="utf-8", xml_declaration=True),
                    mimetype=gbt35965.MEDIA_TYPE)
