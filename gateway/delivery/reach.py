"""What "reached" and "confirmed" mean, defined once for the status API, the progress page,
the unreached list and its CSV.

* **Reached**: a personal channel (SMS, voice call, WeChat) reported the notice
  delivered to the resident (or confirmed). The village loudspeaker and group
  robots reach places, not people: they are reported beside, never counted here.
* **Confirmed**: the resident answered — pressed 1 on a call or replied 1 by SMS
  (a personal delivery in ``confirmed``).
* **Confirmation required**: for a ``severe`` or ``extreme`` notice, from a
  vulnerable resident (visually impaired, or 65 and over). Their calls are repeated
  until they press 1 (``outcomes``); until they confirm they are listed as
  "reached but not confirmed", a second section of the unreached list.

The ledger keeps who was reached first by which channel and when, and who
confirmed when (table ``reached``), with running counts of both.

**Independent paths** (``paths``): the ways a notice can get to a resident that
do not fail together, counting only what they can perceive. An SMS and a call
go to the same handset, so they are one path (``phone``); WeChat is a second;
the village loudspeaker a third, for those who can hear it; a grid worker's visit
(``in_person``) a fourth, counted as planned when the resident's grid has a grid worker
(``visit_planned``). A hearing-impaired
resident perceives neither a call nor the loudspeaker. (The roster has no flag
for residents who cannot read; when it gets one, text channels stop counting
for them here.) The preview, the plan and the disclosure report count with it;
fewer than two paths is thin.
"""
from __future__ import annotations

import json

from sqlalchemy import Connection, and_, exists, func, or_, select, union

from channels.registry import IN_PERSON, PLACE_CHANNELS
from gateway.store import ledger
from gateway.store.ledger.retention import retained
from gateway.store.roster import beneath
from gateway.store.schema import deliveries, reached, residents

CONFIRM_SEVERITIES = ("severe", "extreme")
VULNERABLE_AGE = 65
#: The two sections of the unreached list.
NOT_REACHED = "not_reached"
UNCONFIRMED = "unconfirmed"
SECTIONS = (NOT_REACHED, UNCONFIRMED)
#: The device or place each channel reaches: channels sharing one are one path.
PATH_OF = {"sms": "phone", "voice": "phone", "wechat": "wechat", "loudspeaker": "loudspeaker",
           IN_PERSON: "visit"}
#: Channels a hearing-impaired resident cannot perceive.
SPOKEN = ("voice", "loudspeaker")
#: Fewer independent paths than this and a resident is thin.
ENOUGH_PATHS = 2


def perceivable(person, channel: str) -> bool:
    """Whether the resident can take in a notice over this channel."""
    return not (channel in SPOKEN and person.hearing_impaired)


def visit_planned(grid: str | None, worked_grids) -> bool:
    """Whether a grid worker's visit is planned for a resident of ``grid``: it has a worker
    (``worked_grids``: ``store.grids.worked_grids``)."""
    return grid is not None and grid in worked_grids


def paths(person, channels, loudspeaker: bool = False, visit: bool = False) -> frozenset[str]:
    """The independent paths to a resident over the planned personal ``channels``, the
    loudspeaker when their village has one that plays, and a grid worker's visit when one is
    planned (``visit_planned``)."""
    heard = [*channels, *(("loudspeaker",) if loudspeaker else ()), *((IN_PERSON,) if visit else ())]
    return frozenset(PATH_OF[c] for c in heard if c in PATH_OF and perceivable(person, c))


def is_vulnerable(person, year: int) -> bool:
    """Visually impaired or 65 and over: anything with those two resident columns."""
    return bool(person.visually_impaired) or bool(
        person.birth_year and year - person.birth_year >= VULNERABLE_AGE)


def confirmation_required(severity: str, person, year: int) -> bool:
    return severity in CONFIRM_SEVERITIES and is_vulnerable(person, year)


def reference_year(announcement) -> int:
    """The year ages are counted in: the notice's sending (or writing) year."""
    return (announcement.sent or announcement.created_at).year


def vulnerable_clause(year: int):
    """``is_vulnerable`` as SQL over ``residents``."""
    return or_(residents.c.visually_impaired.is_(True),
               residents.c.birth_year <= year - VULNERABLE_AGE)


def audience_clause(announcement):
    """The residents an announcement is for, as SQL over ``residents``.

    A correction (cancel) is for those the original reached (``correction_recipients``).
    Otherwise it is the residents of its areas still on the roster (a resident retired by
    a roster import is no longer planned nor looked for).
    """
    if announcement.msg_type == "cancel":
        return residents.c.id.in_(correction_recipients(announcement))
    audience = and_(beneath(residents.c.area_code, json.loads(announcement.areas)),
                    residents.c.retired_at.is_(None))
    if announcement.status in ("test", "exercise"):
        audience = and_(audience, residents.c.test_audience.is_(True))
    return audience


def correction_recipients(correction):
    """The residents a correction (cancel) is for, as a SELECT of their ids: those it has
    personal deliveries for (``ledger.add_correction`` copies the original's handed-over ones;
    a grid worker's visit adds one) and those a grid worker told the original in person, whom
    no job can send it to: they are left for a visit."""
    personal = select(deliveries.c.recipient_id).where(
        deliveries.c.announcement_id == correction.id, deliveries.c.channel.notin_(PLACE_CHANNELS))
    if correction.supersedes_id is None:
        return personal
    return union(personal, select(deliveries.c.recipient_id).where(
        deliveries.c.announcement_id == correction.supersedes_id,
        deliveries.c.channel == IN_PERSON))


def _reached_row(announcement_id: int, *conditions):
    return exists().where(reached.c.announcement_id == announcement_id,
                          reached.c.recipient_id == residents.c.id, *conditions)


def section_clause(announcement, section: str):
    """Residents of the audience in one section of the unreached list, as SQL."""
    if section == NOT_REACHED:
        return and_(audience_clause(announcement), ~_reached_row(announcement.id))
    if announcement.severity not in CONFIRM_SEVERITIES:
        return False
    return and_(audience_clause(announcement),
                vulnerable_clause(reference_year(announcement)),
                _reached_row(announcement.id, reached.c.confirmed_at.is_(None)))


def section_counts(conn: Connection, announcement, *, area: str | None = None,
                   planned: bool = False) -> dict[str, int]:
    """How many residents are in each section of the unreached list (of ``area`` only, if given).

    With ``planned`` (the status, polled by the progress page) the not reached are the
    residents the plan counted in the audience less those reached, two running counts,
    instead of a count over the roster; the roster changes since the plan are then not in it.
    """
    kept = retained(conn, announcement.id) if not area else None
    if kept is not None:  # the rows no longer name anyone: the figures counted before
        return {NOT_REACHED: kept.not_reached, UNCONFIRMED: kept.unconfirmed}
    counts = {}
    audience = ledger.audience_count(conn, announcement.id) if planned and not area else None
    if audience is not None:
        counts[NOT_REACHED] = max(audience - ledger.reached_count(conn, announcement.id), 0)
    else:
        condition = section_clause(announcement, NOT_REACHED)
        if area:
            condition = and_(condition, beneath(residents.c.area_code, [area]))
        counts[NOT_REACHED] = conn.execute(
            select(func.count()).select_from(residents).where(condition)).scalar_one()
    counts[UNCONFIRMED] = 0
    if announcement.severity in CONFIRM_SEVERITIES:
        # From the reached residents (the announcement's rows of ``reached``), not the roster.
        condition = and_(reached.c.announcement_id == announcement.id,
                         reached.c.confirmed_at.is_(None), audience_clause(announcement),
                         vulnerable_clause(reference_year(announcement)))
        if area:
            condition = and_(condition, beneath(residents.c.area_code, [area]))
        counts[UNCONFIRMED] = conn.execute(
            select(func.count()).select_from(
                reached.join(residents, residents.c.id == reached.c.recipient_id))
            .where(condition)).scalar_one()
    return counts
