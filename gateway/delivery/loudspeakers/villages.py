"""Per village an announcement's loudspeakers are in: played or not, which devices are offline."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from gateway.delivery.loudspeakers.acks import CHANNEL
from gateway.store.schema import areas, deliveries, devices


def coverage(conn: Connection, announcement_id: int) -> list[dict[str, Any]]:
    """Per village the announcement's loudspeakers are in: how many played it, which are offline.

    A village is ``reached`` once one of its devices has played the notice; an
    offline device plays nothing, so a village with only offline devices is not.
    """
    rows = conn.execute(
        select(devices.c.area_code, areas.c.name, devices.c.device_id, devices.c.online,
               deliveries.c.status)
        .join(devices, devices.c.id == deliveries.c.recipient_id)
        .join(areas, areas.c.code == devices.c.area_code, isouter=True)
        .where(deliveries.c.announcement_id == announcement_id, deliveries.c.channel == CHANNEL)
        .order_by(devices.c.area_code, devices.c.device_id)).all()
    villages: dict[str, dict[str, Any]] = {}
    for row in rows:
        village = villages.setdefault(row.area_code, {
            "area_code": row.area_code, "name": row.name, "devices": 0, "played": 0,
            "offline": [], "reached": False})
        village["devices"] += 1
        if row.status == "confirmed":
            village["played"] += 1
            village["reached"] = True
        if row.online is False:
            village["offline"].append(row.device_id)
    return list(villages.values())
