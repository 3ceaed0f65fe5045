"""The retention pass (PIPL: personal data kept no longer than needed): ``RETENTION_DAYS``
after a notice finished, its delivery details are deleted through the ledger
(``gateway.store.ledger.retention``), with the SMS replies about it, its grid workers' taps
(``grids.forget_visits``) and who called the hotline for it (``hotline.forget_callers``; the
calls stay counted). The outbox's records older than ``RETENTION_DAYS`` go as well
(``channels.outbox.forget_before``). The figures the status and the disclosure report count from personal
rows are kept first, so every number reported stays the same. Each notice is one transaction
and one audit entry.

The reconciler's pass queues it once an hour (``queue_pass_when_due``) as a job on the imports
queue, slow work no notice waits for, and ``flask --app wsgi retention`` runs it at once.
``RETENTION_DAYS=0`` (the default) keeps everything.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Connection, delete, select

from channels import outbox
from gateway.delivery import disclosure, providers, queues, reach
from gateway.store import audit, grids, hotline
from gateway.store.db import engine, utcnow
from gateway.store.ledger.retention import anonymise, retained
from gateway.store.schema import announcements, delivery_counts, inbound_messages, retained_figures

#: States a notice is finished in; anything still pending waits for a later pass.
FINISHED_STATES = ("done", "cancelled", "superseded")
ACTOR = "retention"
#: Set while a pass was queued less than ``EVERY_SECONDS`` ago, by any host.
QUEUED_MARK = "tongbao:retention-queued"
EVERY_SECONDS = 3600
log = logging.getLogger(__name__)


def queue_pass_when_due() -> bool:
    """Queue a pass unless one was queued within the hour (or retention is off)."""
    if not current_app.config["RETENTION_DAYS"]:
        return False
    if not queues.connection().set(QUEUED_MARK, "1", nx=True, ex=EVERY_SECONDS):
        return False
    queues.enqueue_retention()
    log.info("retention pass queued")
    return True


def run(now: datetime | None = None) -> dict[str, int]:
    """Anonymise every notice finished more than ``RETENTION_DAYS`` ago; returns what it did."""
    days = current_app.config["RETENTION_DAYS"]
    done = {"announcements": 0, "deliveries": 0, "replies": 0, "outbox": 0}
    if not days:
        return done
    cutoff = (now or utcnow()) - timedelta(days=days)
    with engine().connect() as conn:
        due = _due(conn, cutoff)
    for announcement_id in due:
        with engine().begin() as conn:
            result = anonymise_one(conn, announcement_id, days)
        done["announcements"] += 1
        done["deliveries"] += result["deliveries"]
        done["replies"] += result["replies"]
    with engine().begin() as conn:
        # Replies that named no notice (an unknown number, before any SMS) age out by their time.
        unmatched = conn.execute(delete(inbound_messages).where(
            inbound_messages.c.announcement_id.is_(None), inbound_messages.c.at < cutoff)).rowcount
        if unmatched:
            audit.record(conn, ACTOR, "retention", "inbound_messages",
                         {"days": days, "replies": unmatched})
    done["replies"] += unmatched
    done["outbox"] = _forget_outbox(cutoff, days)
    if any(done.values()):
        log.info("retention: delivery details of %d finished notices deleted (%d deliveries, "
                 "%d replies), %d outbox records", done["announcements"], done["deliveries"],
                 done["replies"], done["outbox"])
    return done


def _forget_outbox(cutoff: datetime, days: int) -> int:
    """The outbox's records (phones, texts, codes) made before ``cutoff`` go too."""
    forgotten = outbox.forget_before(providers.outbox_path(current_app), cutoff)
    if forgotten:
        with engine().begin() as conn:
            audit.record(conn, ACTOR, "retention", "outbox", {"days": days, "records": forgotten})
    return forgotten


def _due(conn: Connection, cutoff: datetime) -> list[int]:
    pending = select(delivery_counts.c.announcement_id).where(
        delivery_counts.c.status.in_(("planned", "queued", "sending")), delivery_counts.c.count > 0)
    return [row.id for row in conn.execute(
        select(announcements.c.id)
        .outerjoin(retained_figures, retained_figures.c.announcement_id == announcements.c.id)
        .where(announcements.c.state.in_(FINISHED_STATES), announcements.c.finished_at < cutoff,
               retained_figures.c.announcement_id.is_(None),
               announcements.c.id.notin_(pending))
        .order_by(announcements.c.id))]


def anonymise_one(conn: Connection, announcement_id: int, days: int) -> dict[str, int]:
    """Keep the notice's figures, delete its details and its replies, audit it."""
    announcement = conn.execute(select(announcements)
                                .where(announcements.c.id == announcement_id)).one()
    if retained(conn, announcement_id) is not None:
        return {"deliveries": 0, "reached": 0, "replies": 0, "hotline_calls": 0, "grid_visits": 0}
    sections = reach.section_counts(conn, announcement, planned=True)
    report = disclosure.report(conn, announcement)
    result = anonymise(conn, announcement_id, not_reached=sections[reach.NOT_REACHED],
                       unconfirmed=sections[reach.UNCONFIRMED], disclosure=report)
    result["replies"] = conn.execute(delete(inbound_messages).where(
        inbound_messages.c.announcement_id == announcement_id)).rowcount
    result["hotline_calls"] = hotline.forget_callers(conn, announcement_id)
    result["grid_visits"] = grids.forget_visits(conn, announcement_id)
    audit.record(conn, ACTOR, "retention", f"announcement:{announcement_id}",
                 {"days": days, **result})
    return result
