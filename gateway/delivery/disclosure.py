"""The after-action disclosure report of a sent notice: who was targeted, reached (and by
which channel first), confirmed and not reached, and how fast, per segment of residents
(town × age band × impairment × written language, as in the preview), with each village's
loudspeakers.

It counts with ``reach`` (the ``reached`` table the ledger keeps), the same as the status
API, so its totals equal the status API's ``reached_residents``, ``confirmed_residents``,
``not_reached_residents`` and ``unconfirmed_residents``. Times are seconds from the
notice's release (``sent``) to the moment the resident was first reached; the time to
50 % (90 %) reached is when that share of the segment's targeted residents had been
reached, and ``None`` while it has not. A resident a grid worker told at the door counts as
reached (and confirmed) first ``in_person`` when no machine got there before.
"""
from __future__ import annotations

import csv
import io
import json
import math

from sqlalchemy import Connection, and_, func, select

from channels.registry import RESIDENT_CHANNELS
from gateway.delivery import public_channels, reach
from gateway.delivery.preview import segment_key
from gateway.delivery.reports import inert_cell
from gateway.store.ledger.retention import retained, retained_disclosure
from gateway.store.roster import beneath
from gateway.store.schema import deliveries, devices, reached, residents

SHARES = (50, 90)
SEGMENT_COLUMNS = ("town", "age_band", "impairment", "language", "targeted", "reached",
                   *(f"first_{channel}" for channel in RESIDENT_CHANNELS), "confirmed",
                   "unconfirmed", "not_reached", "seconds_to_50", "seconds_to_90")
VILLAGE_COLUMNS = ("village", "targeted", "reached", "loudspeakers", "played", "failed")


def report(conn: Connection, announcement) -> dict:
    kept = retained(conn, announcement.id)
    if kept is not None:  # its details were deleted (retention): the report made just before
        return retained_disclosure(kept)
    year = reach.reference_year(announcement)
    must_confirm = announcement.severity in reach.CONFIRM_SEVERITIES
    segments: dict[tuple, dict] = {}
    villages: dict[str, dict] = {}
    times: dict[tuple, list[float]] = {}
    joined = residents.outerjoin(reached, and_(reached.c.announcement_id == announcement.id,
                                               reached.c.recipient_id == residents.c.id))
    rows = conn.execute(select(residents.c.area_code, residents.c.birth_year,
                               residents.c.visually_impaired, residents.c.hearing_impaired,
                               residents.c.language,
                               reached.c.recipient_id.label("reached_id"), reached.c.channel,
                               reached.c.reached_at, reached.c.confirmed_at)
                        .select_from(joined).where(reach.audience_clause(announcement))
                        .execution_options(yield_per=5000))
    total = _blank(("*", "*", "*", "*"))
    for row in rows:
        key = segment_key(row.area_code[:9], row.birth_year, row.visually_impaired,
                          row.hearing_impaired, row.language, year)
        segment = segments.get(key) or segments.setdefault(key, _blank(key))
        village = villages.setdefault(row.area_code, {"village": row.area_code, "targeted": 0,
                                                      "reached": 0, "loudspeakers": 0,
                                                      "played": 0, "failed": 0})
        village["targeted"] += 1
        for counts in (segment, total):
            counts["targeted"] += 1
        if row.reached_id is None:
            continue
        village["reached"] += 1
        unconfirmed = (row.confirmed_at is None and must_confirm
                       and reach.is_vulnerable(row, year))
        seconds = (max((row.reached_at - announcement.sent).total_seconds(), 0.0)
                   if row.reached_at and announcement.sent else None)
        for counts, key_ in ((segment, key), (total, None)):
            counts["reached"] += 1
            if row.channel in RESIDENT_CHANNELS:
                counts[f"first_{row.channel}"] += 1
            counts["confirmed"] += row.confirmed_at is not None
            counts["unconfirmed"] += unconfirmed
            if seconds is not None:
                times.setdefault(key_, []).append(seconds)
    for key_, counts in [*segments.items(), (None, total)]:
        counts["not_reached"] = counts["targeted"] - counts["reached"]
        ordered = sorted(times.get(key_, []))
        for share in SHARES:
            needed = math.ceil(counts["targeted"] * share / 100)
            counts[f"seconds_to_{share}"] = (round(ordered[needed - 1], 1)
                                             if 0 < needed <= len(ordered) else None)
    _add_loudspeakers(conn, announcement, villages)
    return {
        "announcement": announcement.id,
        "sent": announcement.sent.isoformat() if announcement.sent else None,
        "confirmation_required": must_confirm,
        "segments": [segments[key] for key in sorted(segments)],
        "total": total,
        "villages": [villages[code] for code in sorted(villages)],
        "places": public_channels.summary(conn, announcement.id),
    }


def _blank(key: tuple) -> dict:
    counts = {"town": key[0], "age_band": key[1], "impairment": key[2], "language": key[3],
              "targeted": 0,
              "reached": 0, "confirmed": 0, "unconfirmed": 0}
    counts.update({f"first_{channel}": 0 for channel in RESIDENT_CHANNELS})
    return counts


def _add_loudspeakers(conn: Connection, announcement, villages: dict[str, dict]) -> None:
    """Per village: its loudspeakers sent this notice, how many played it (the device said
    ``played``) and how many failed; villages with a loudspeaker but no targeted resident too."""
    if announcement.msg_type == "cancel":
        return
    sent_to = conn.execute(
        select(devices.c.area_code, deliveries.c.status, func.count().label("n"))
        .join(devices, devices.c.id == deliveries.c.recipient_id)
        .where(deliveries.c.announcement_id == announcement.id,
               deliveries.c.channel == "loudspeaker",
               beneath(devices.c.area_code, json.loads(announcement.areas)))
        .group_by(devices.c.area_code, deliveries.c.status))
    for row in sent_to:
        village = villages.setdefault(row.area_code, {"village": row.area_code, "targeted": 0,
                                                      "reached": 0, "loudspeakers": 0,
                                                      "played": 0, "failed": 0})
        village["loudspeakers"] += row.n
        village["played"] += row.n if row.status == "confirmed" else 0
        village["failed"] += row.n if row.status == "failed" else 0


def report_csv(data: dict, segment_header: list[str], village_header: list[str],
               names: dict[str, str]) -> str:
    """The report as CSV (with a BOM): the segments and their total, a blank line, the villages.

    ``names`` turns area codes (and age band and impairment keys, language tags) into the
    reader's words.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([inert_cell(title) for title in segment_header])
    for counts in [*data["segments"], data["total"]]:
        writer.writerow([inert_cell(names.get(counts[c], counts[c]) if c in ("town", "age_band",
                                                                               "impairment",
                                                                               "language")
                                    else counts[c]) for c in SEGMENT_COLUMNS])
    writer.writerow([])
    writer.writerow([inert_cell(title) for title in village_header])
    for village in data["villages"]:
        writer.writerow([inert_cell(names.get(village["village"], village["village"]))]
                        + [village[c] for c in VILLAGE_COLUMNS[1:]])
    return "\ufeff" + buffer.getvalue()
