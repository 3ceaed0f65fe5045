"""The delivery ledger: one row per (announcement, channel, recipient), moved forward only.

Every status change goes through here, in the same transaction as the running
counts in ``delivery_counts``, so the status page reads a handful of rows
instead of scanning millions. Statuses move forward only; the two ways back
(``reschedule`` for a retry, ``reclaim_abandoned``) are explicit and owned by jobs.
"""
from gateway.store.ledger.leases import claim, held_by, reclaim_abandoned, release, renew
from gateway.store.ledger.moves import (advance, cancel_pending, fail_pending_to,
                                        forgive_attempt, held_for_update, note, provider_matches,
                                        reschedule, settle, transition)
from gateway.store.ledger.rows import (ROW_FIELDS, add, add_correction, add_missing,
                                       copy_field, pending_batches, write)
from gateway.store.ledger.statuses import (FINAL, HANDED_OVER, PENDING, REACHED, STATUSES,
                                           may_move)
from gateway.store.ledger.visits import cancel_visited, record_in_person
from gateway.store.ledger.totals import (AUDIENCE_KEY, CONFIRMED_KEY, REACHED_KEY, RESENT_KEY,
                                         audience_count, bump, confirmed_count, counts,
                                         ensure_counts, reached_count, resent_count,
                                         set_audience)

__all__ = ["AUDIENCE_KEY", "CONFIRMED_KEY", "FINAL", "HANDED_OVER", "PENDING", "REACHED",
           "REACHED_KEY", "RESENT_KEY", "ROW_FIELDS", "STATUSES", "add", "add_correction", "add_missing",
           "advance", "audience_count", "bump", "cancel_pending", "claim", "confirmed_count",
           "counts", "ensure_counts", "fail_pending_to", "forgive_attempt", "held_by",
           "held_for_update",
           "may_move", "note", "pending_batches", "provider_matches", "reached_count",
           "reclaim_abandoned", "record_in_person", "release", "renew", "reschedule", "resent_count", "set_audience",
           "settle", "transition", "write"]
