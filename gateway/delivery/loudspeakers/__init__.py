"""The gateway's side of the village loudspeakers: acks into the ledger, presence, re-sends, stop.

The channel (``channels.loudspeaker.channel``) publishes one signed ``play`` per
delivery, with the command id ``a<announcement>-d<delivery>``; what devices say
back arrives through ``channels.loudspeaker.acks.AckListener``, which
``listener.listen`` runs and ``acks`` records in the ledger. A play no device
has acknowledged within ``LOUDSPEAKER_ACK_SECONDS`` is sent again, up to
``MAX_ATTEMPTS`` sends, and then fails (``resend``). A cancel queues
``stop.stop_loudspeakers_job``; ``villages.coverage`` tells which villages
heard an announcement. See the "Gateway side" section of
``docs/loudspeaker-protocol.md``.
"""
from gateway.delivery.loudspeakers.acks import apply_event, record_acks
from gateway.delivery.loudspeakers.listener import listen, listen_until_signalled
from gateway.delivery.loudspeakers.resend import resend_unacknowledged
# rq finds the job by this dotted path (gateway.delivery.queues), including jobs
# queued before the module became a package.
from gateway.delivery.loudspeakers.stop import stop_loudspeakers_job
from gateway.delivery.loudspeakers.villages import coverage

__all__ = ["apply_event", "coverage", "listen", "listen_until_signalled", "record_acks",
           "resend_unacknowledged", "stop_loudspeakers_job"]
