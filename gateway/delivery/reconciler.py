"""The reconciler: what a crash or an outage stranded, found in the ledger and queued again.

The worker holding the reconciler's lock runs it every ``RECONCILE_SECONDS`` (one of
all the hosts' workers; see ``gateway.delivery.workers``), and ``flask --app wsgi
reconcile`` runs it once. It is safe to run at any time, twice,
or in two places at once: a batch job that finds nothing to claim sends nothing.
It also queues the grid workers' nudges (``fieldwork.send_nudges``) when they are on.
Roster imports are not in the ledger: their notes on disk say which are still to run
(``gateway.delivery.imports.requeue_stranded``).
"""
from __future__ import annotations

from sqlalchemy import select

from gateway.delivery import fieldwork, imports, queues, retention
from gateway.store import ledger
from gateway.store.db import engine
from gateway.store.schema import announcements


def reconcile() -> dict[str, int]:
    """Take back abandoned sends, queue batches, plans and roster imports that have no live job,
    and the grid workers' nudges when some may be due."""
    with engine().begin() as conn:
        reclaimed = ledger.reclaim_abandoned(conn, queues.worker_alive)
        groups = ledger.pending_batches(conn)
    requeued = 0
    for group in groups:
        if not queues.batch_has_live_job(group.announcement_id, group.channel, group.batch):
            queues.enqueue_batches(group.announcement_id, group.channel, [group.batch])
            requeued += 1
    with engine().connect() as conn:
        approved = conn.execute(select(announcements.c.id)
                                .where(announcements.c.state == "approved")).all()
    stuck_plans = [row.id for row in approved if not queues.plan_has_live_job(row.id)]
    for announcement_id in stuck_plans:
        queues.enqueue_plan(announcement_id)
    retention.queue_pass_when_due()
    with engine().connect() as conn:
        nudges = fieldwork.nudges_may_be_due(conn) and queues.enqueue_nudges()
    return {"batches_requeued": requeued, "sends_reclaimed": sum(reclaimed.values()),
            "plans_requeued": len(stuck_plans), "imports_requeued": imports.requeue_stranded(),
            "nudges_queued": int(nudges)}
