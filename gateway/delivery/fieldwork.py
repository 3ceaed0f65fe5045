"""Grid workers' work: who in their grids a live notice has not reached (or, where
confirmation is required, reached but not confirmed), and what their taps at the door do.

Who is left is ``reach``'s unreached list (``section_clause``), narrowed to the worker's
grids; nothing here redefines reached or confirmed. A tap is kept once per tap id
(``store.grids.record_tap``); a new one is audited and:

* ``told`` (told in person): an ``in_person`` delivery, confirmed, through the ledger
  (``ledger.record_in_person``), which also ends the notice's other sends to the resident;
* ``not_home``, ``refused``: an attempt, shown with what was tried;
* ``moved`` (moved away or wrong data): an attempt, and the resident flagged for the
  admin's roster review with the worker's note.

``grid_report`` is the office's after-action view per village and grid: reached first by a
machine or in person, not reached, the time to 90 % reached, the grid's workers, last visit
and last nudge.

**Nudges** (``send_nudges``, queued by the reconciler's pass): ``GRID_NUDGE_AFTER_MINUTES``
after a severe or extreme notice's release, each grid worker with a phone of each grid with
people left gets one SMS linking to ``/grid``. A ``grid_nudges`` row per (notice, grid,
worker), written before the SMS, keeps a second pass or host from nudging twice. Drills
(``test``/``exercise``) nudge too: their audience is the roster's test residents, whose grid
workers practise the last mile with them.
"""
from __future__ import annotations

import csv
import io
import math
import re
import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Connection, and_, case, func, or_, select

from channels.registry import IN_PERSON
from messages.nudge import nudge_sms
from gateway.delivery import lifecycle, providers, reach, reports
from gateway.store import audit, grids, ledger
from gateway.store.db import as_utc, engine, utcnow
from gateway.store.schema import announcements, reached, residents

TAP_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
REPORT_COLUMNS = ("village", "grid", "targeted", "reached_by_machine", "reached_in_person",
                  "not_reached", "seconds_to_90", "workers", "last_visit", "last_nudge")
#: Residents shown per notice on one page; a grid holds a few hundred households.
MAX_PEOPLE = 500
#: Severities whose grid workers are nudged when the machines have had their chance.
NUDGE_SEVERITIES = reach.CONFIRM_SEVERITIES

log = logging.getLogger(__name__)


class TapRefused(ValueError):
    """A tap that can never be recorded (the phone drops it and says why)."""


def worklist(conn: Connection, user_id: int) -> list[dict]:
    """For each live notice (a withdrawal too) with people left in the user's grids: those
    people, with what they need, their phone, what was tried and the taps already made."""
    mine = grids.grids_of(conn, user_id)
    if not mine:
        return []
    return [entry for entry in (_notice_work(conn, notice, mine)
                                for notice in lifecycle.in_force(conn, withdrawals=True))
            if entry["people"]]


def _left(announcement):
    """The notice's people a grid worker should visit, as SQL: both sections of the
    unreached list (the second only where confirmation is required)."""
    clauses = [reach.section_clause(announcement, name) for name in reach.SECTIONS]
    return or_(*(clause for clause in clauses if clause is not False))


def _notice_work(conn: Connection, announcement, grid_codes: list[str]) -> dict:
    year = reach.reference_year(announcement)
    left = _left(announcement)
    not_reached = reach.section_clause(announcement, reach.NOT_REACHED)
    section = case((not_reached, reach.NOT_REACHED), else_=reach.UNCONFIRMED).label("section")
    people = conn.execute(select(residents, section)
                          .where(and_(left, residents.c.grid.in_(grid_codes)))
                          .order_by(section, residents.c.grid, residents.c.id)
                          .limit(MAX_PEOPLE)).all()
    ids = [person.id for person in people]
    tried = reports.tried_channels(conn, announcement.id, ids)
    taps = grids.visits(conn, announcement.id, ids)
    withdrawal = announcement.msg_type == "cancel"
    # the taps at their door for the withdrawn notice: who told them what is now withdrawn
    withdrawn_taps = grids.visits(conn, announcement.supersedes_id, ids) if withdrawal else {}
    return {"id": announcement.id, "headline": announcement.headline,
            "severity": announcement.severity, "withdrawal": withdrawal,
            "people": [{"id": p.id, "name": p.name, "phone": p.phone,
                        "phone_invalid": p.phone_invalid is not None, "grid": p.grid,
                        "section": p.section, "needs": needs(p, year),
                        "tried": tried.get(p.id, []), "visits": taps.get(p.id, []),
                        "withdrawn_visits": withdrawn_taps.get(p.id, [])}
                       for p in people]}


def due_for_nudges(conn: Connection, now: datetime | None = None) -> list:
    """Live severe or extreme notices released ``GRID_NUDGE_AFTER_MINUTES`` ago or more
    (none when the setting is 0)."""
    minutes = current_app.config["GRID_NUDGE_AFTER_MINUTES"]
    if not minutes:
        return []
    cutoff = (now or utcnow()) - timedelta(minutes=minutes)
    return [notice for notice in lifecycle.in_force(conn, withdrawals=True)
            if notice.severity in NUDGE_SEVERITIES and notice.sent and as_utc(notice.sent) <= cutoff]


def nudges_may_be_due(conn: Connection) -> bool:
    """Whether a nudge pass could find work: a notice due and a grid worker with a phone."""
    return bool(due_for_nudges(conn)) and grids.any_worker_with_phone(conn)


def grids_left(conn: Connection, announcement) -> dict[str, int]:
    """grid code → how many of the notice's people there are still left to visit."""
    return dict(conn.execute(select(residents.c.grid, func.count())
                             .where(_left(announcement), residents.c.grid.is_not(None))
                             .group_by(residents.c.grid)).all())


def send_nudges(now: datetime | None = None) -> int:
    """Nudge, once, each grid worker (with a phone) of each grid with people left of each
    notice due (``due_for_nudges``); returns how many SMS went. The queued job of the
    reconciler's pass; safe to run twice or on two hosts at once."""
    sent = 0
    with engine().connect() as conn:
        due = [(notice, grids_left(conn, notice)) for notice in due_for_nudges(conn, now)]
    for notice, left in due:
        if not left:
            continue
        with engine().connect() as conn:
            workers = grids.workers_with_phones(conn, list(left))
        for worker in workers:
            sent += _nudge(notice, worker, left[worker.grid_code])
    return sent


def _nudge(notice, worker, left: int) -> int:
    with engine().begin() as conn:
        if not grids.mark_nudged(conn, notice.id, worker.grid_code, worker.user_id):
            return 0
    rendered = nudge_sms(notice.headline, worker.grid_code, left, notice.language,
                         providers.render_context(), withdrawal=notice.msg_type == "cancel")
    try:
        providers.send_sms_now(worker.phone, rendered)
    except Exception:
        log.exception("nudging %s for notice %s failed; the next pass tries again",
                      worker.name, notice.id)
        with engine().begin() as conn:
            grids.unmark_nudged(conn, notice.id, worker.grid_code, worker.user_id)
        return 0
    with engine().begin() as conn:
        audit.record(conn, "system", "nudge", f"grid:{worker.grid_code}",
                     {"announcement": notice.id, "worker": worker.name, "left": left})
    return 1


def needs(person, year: int) -> list[str]:
    """What a visitor should know before knocking: ``blind``, ``deaf``, ``elderly`` (65 and
    over), ``language:<tag>`` when they speak other than Chinese, ``no_smartphone``."""
    found = []
    if person.visually_impaired:
        found.append("blind")
    if person.hearing_impaired:
        found.append("deaf")
    if person.birth_year and year - person.birth_year >= reach.VULNERABLE_AGE:
        found.append("elderly")
    if person.spoken_language != "zh":
        found.append(f"language:{person.spoken_language}")
    if not person.has_smartphone:
        found.append("no_smartphone")
    return found


def apply_tap(conn: Connection, user, tap: dict) -> bool:
    """Record one tap of ``user`` (a grid worker); True when it was new, False for a resend.

    ``tap``: ``id`` (made by the phone), ``announcement``, ``resident``, ``outcome`` (one of
    ``grids.OUTCOMES``), optional ``note`` and ``tapped_at`` (ISO 8601, the phone's clock).
    Raises ``TapRefused`` for a tap that is malformed or not this worker's to make.
    """
    tap_id, announcement_id, resident_id, outcome, note, tapped_at = _checked(tap)
    announcement = conn.execute(select(announcements)
                                .where(announcements.c.id == announcement_id)).first()
    if announcement is None or announcement.state not in lifecycle.LIVE_STATES:
        raise TapRefused(f"notice {announcement_id} is not being sent")
    person = conn.execute(select(residents).where(
        residents.c.id == resident_id, residents.c.grid.in_(grids.grids_of(conn, user.id)),
        reach.audience_clause(announcement))).first()
    if person is None:
        raise TapRefused(f"resident {resident_id} is not one of this notice's people in your grids")
    if not grids.record_tap(conn, tap_id=tap_id, announcement_id=announcement_id,
                            resident_id=resident_id, user_id=user.id, outcome=outcome, note=note,
                            tapped_at=tapped_at):
        return False
    if outcome == grids.TOLD:
        written_in = lifecycle.languages(conn, announcement)
        ledger.record_in_person(conn, announcement_id, resident_id, user.name,
                                lifecycle.language_for(person, written_in, announcement))
    elif outcome == grids.MOVED:
        grids.flag_for_review(conn, resident_id, note)
    audit.record(conn, user.name, "visit", f"resident:{resident_id}",
                 {"announcement": announcement_id, "outcome": outcome, "note": note,
                  "tap": tap_id, "tapped_at": tapped_at})
    return True


def _checked(tap) -> tuple:
    if not isinstance(tap, dict):
        raise TapRefused("a tap is a JSON object")
    tap_id = tap.get("id")
    if not isinstance(tap_id, str) or not TAP_ID.fullmatch(tap_id):
        raise TapRefused("a tap needs an id of 8 to 64 letters, digits, - or _")
    announcement_id, resident_id = tap.get("announcement"), tap.get("resident")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2 ** 53
               for v in (announcement_id, resident_id)):
        raise TapRefused("a tap names its notice and resident by their ids")
    outcome = tap.get("outcome")
    if outcome not in grids.OUTCOMES:
        raise TapRefused(f"outcome must be one of {', '.join(grids.OUTCOMES)}")
    note = tap.get("note") or ""
    if not isinstance(note, str) or len(note) > grids.NOTE_MAX_LENGTH:
        raise TapRefused(f"a note is text of at most {grids.NOTE_MAX_LENGTH} characters")
    return tap_id, announcement_id, resident_id, outcome, note.strip(), _moment(tap.get("tapped_at"))


def _moment(value) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise TapRefused("tapped_at is not an ISO 8601 time") from None
    return as_utc(moment)


def grid_report(conn: Connection, announcement) -> list[dict]:
    """Per village and grid (``grid`` None: the village's residents with no grid), over the
    notice's audience: targeted, reached first by a machine (SMS, call, WeChat) or in person,
    not reached, seconds from the release until 90 % were reached (None while not), the
    grid's workers and the time of its last visit for this notice."""
    sent = as_utc(announcement.sent)
    groups: dict[tuple, dict] = {}
    times: dict[tuple, list[float]] = {}
    for row in conn.execute(
            select(residents.c.area_code, residents.c.grid, reached.c.channel, reached.c.reached_at)
            .select_from(residents.outerjoin(reached, and_(
                reached.c.announcement_id == announcement.id,
                reached.c.recipient_id == residents.c.id)))
            .where(reach.audience_clause(announcement))):
        key = (row.area_code, row.grid or "")
        group = groups.setdefault(key, {"village": row.area_code, "grid": row.grid,
                                        "targeted": 0, "reached_by_machine": 0,
                                        "reached_in_person": 0, "not_reached": 0})
        group["targeted"] += 1
        if row.channel is None:
            group["not_reached"] += 1
            continue
        group["reached_in_person" if row.channel == IN_PERSON else "reached_by_machine"] += 1
        if sent and row.reached_at:
            times.setdefault(key, []).append(max((as_utc(row.reached_at) - sent).total_seconds(), 0))
    workers = {row["code"]: row["workers"] for row in grids.registry(conn)}
    last = grids.last_visits(conn, announcement.id)
    nudged = grids.last_nudges(conn, announcement.id)
    for key, group in groups.items():
        ordered = sorted(times.get(key, []))
        needed = math.ceil(group["targeted"] * 0.9)
        group["seconds_to_90"] = round(ordered[needed - 1], 1) if 0 < needed <= len(ordered) else None
        group["workers"] = workers.get(group["grid"], [])
        group["last_visit"] = last.get(group["grid"])
        group["last_nudge"] = nudged.get(group["grid"])
    return [groups[key] for key in sorted(groups)]


def grid_report_csv(rows: list[dict], header: list[str], names: dict[str, str]) -> str:
    """The report as CSV with a BOM, one line per village and grid; ``names`` gives the
    villages' and grids' names (in the reader's words); cells inert for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([reports.inert_cell(title) for title in header])
    for row in rows:
        cells = {**row, "village": f"{names.get(row['village'], '')} {row['village']}".strip(),
                 "grid": f"{names.get(row['grid'], '')} {row['grid'] or ''}".strip(),
                 "workers": ";".join(row["workers"]),
                 **{moment: row[moment].isoformat() if row[moment] else ""
                    for moment in ("last_visit", "last_nudge")}}
        writer.writerow([reports.inert_cell(cells[column]) for column in REPORT_COLUMNS])
    return "\ufeff" + buffer.getvalue()
