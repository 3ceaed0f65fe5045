"""The pull form for broadcasters: ``GET /feeds/destinations/<n>/alerts.xml`` with
``Authorization: Bearer <feed token>`` answers the notices in force for that destination's
area, each a GB/T 35965.1 document (``<alert>``) inside one ``<alerts>`` element, newest first.

In force (``lifecycle.in_force``): released, not expired, not withdrawn (a cancelled or superseded notice
leaves the feed; its correction is a notice of its own); ``actual`` ones, and drills too for
a test destination. A token is the destination's own: another's token, or none, is a 401.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from flask import Blueprint, Response, request
from gateway.delivery import lifecycle, public_channels
from gateway.store import destinations
from gateway.store.db import engine, utcnow
from messages import gbt35965

bp = Blueprint("destination_feed", __name__)
FEED_SIZE = 50


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
        rows = lifecycle.in_force(conn, statuses)
    feed = ET.Element("alerts", updated=gbt35965.beijing_time(utcnow()))
    for row in [row for row in rows if destinations.covers(destination, json.loads(row.areas))][
            :FEED_SIZE]:
        rendered = public_channels.rendered(row, "broadcast", row.language)
        feed.append(ET.fromstring(rendered.text.encode("utf-8")))
    ET.indent(feed)
    return Response(ET.tostring(feed, encoding="utf-8", xml_declaration=True),
                    mimetype=gbt35965.MEDIA_TYPE)
