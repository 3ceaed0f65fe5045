"""Who did what, when: every create, approve, send, cancel and import, and every export of
the unreached list (names and phones), is written here."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert

from gateway.store.db import utcnow
from gateway.store.schema import audit_log


def record(conn: Connection, actor: str, action: str, target: str = "",
           detail: Any = "") -> None:
    if not isinstance(detail, str):
        detail = json.dumps(detail, ensure_ascii=False, default=str)
    conn.execute(insert(audit_log).values(at=utcnow(), actor=actor, action=action,
                                          target=target, detail=detail))
