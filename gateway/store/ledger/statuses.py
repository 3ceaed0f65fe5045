"""The statuses a delivery moves through, and which moves are allowed."""
from __future__ import annotations

STATUSES = ("planned", "queued", "sending", "sent", "delivered", "confirmed", "failed",
            "cancelled")
PENDING = ("planned", "queued")
#: A personal delivery in one of these has reached its resident.
REACHED = ("delivered", "confirmed")
#: The provider took these: a correction goes to each, and an SMS reply answers the latest.
HANDED_OVER = ("sent", *REACHED)
FINAL = ("delivered", "confirmed", "failed", "cancelled")
_RANK = {"planned": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4, "confirmed": 5}
# failed may follow anything not yet delivered; cancelled only what no job holds.
_FAILABLE = ("planned", "queued", "sending", "sent")


def may_move(old: str, new: str) -> bool:
    if new == "failed":
        return old in _FAILABLE
    if new == "cancelled":
        return old in PENDING
    return old in _RANK and new in _RANK and _RANK[new] > _RANK[old]
