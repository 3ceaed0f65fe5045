"""After a cancel: ``stop`` to every device that may be playing or holding the announcement."""
from __future__ import annotations

from flask import Flask, current_app
from sqlalchemy import select

from channels.base import ChannelError
from gateway.delivery import providers
from gateway.delivery.loudspeakers.acks import CHANNEL, OUT_WITH_DEVICE
from gateway.store.schema import deliveries


def stop_everywhere(app: Flask, announcement_id: int) -> int:
    """Send ``stop`` to every device that may be playing or holding the announcement.

    Returns how many devices were told. Raises ``ChannelError`` naming the
    devices the broker did not take a stop for, after trying them all.
    """
    if providers.configured_provider(app.config, CHANNEL) is None:
        return 0  # the outbox stands in for loudspeakers: nothing plays anywhere
    with app.extensions["engine"].connect() as conn:
        device_ids = conn.execute(select(deliveries.c.address).where(
            deliveries.c.announcement_id == announcement_id, deliveries.c.channel == CHANNEL,
            deliveries.c.status.in_(OUT_WITH_DEVICE))).scalars().all()
    if not device_ids:
        return 0
    failures = []
    with app.app_context():
        channel = providers.sender(CHANNEL)
        for device_id in device_ids:
            try:
                channel.stop(device_id, announcement_id)
            except ChannelError as error:
                failures.append(f"{device_id}: {error}")
    if failures:
        raise ChannelError(f"stop for announcement {announcement_id} not sent to "
                           f"{len(failures)} of {len(device_ids)} devices: " + "; ".join(failures))
    return len(device_ids)


def stop_loudspeakers_job(announcement_id: int) -> int:
    """The rq job queued after a cancel."""
    return stop_everywhere(current_app._get_current_object(), announcement_id)
