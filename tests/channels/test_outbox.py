"""channels/outbox.py: what a channel with no provider records, and retention's rewrite of it
(``forget_before``), which loses no line that worker processes append meanwhile."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import pytest

from channels import outbox
from channels.base import Outgoing
from channels.outbox import OutboxChannel
from messages.render import Rendered

WRITERS = 2
SENDS_EACH = 1500
#: One worker process: its sends through the channel, the same as a delivery job's.
WRITER = textwrap.dedent("""
    import sys
    from channels.base import Outgoing
    from channels.outbox import OutboxChannel
    from messages.render import Rendered
    path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    channel = OutboxChannel({"path": path, "channel": "sms"})
    for delivery_id in range(first, first + count):
        channel.send(Outgoing(delivery_id=delivery_id, announcement_id=1, address="+8613900000001",
                              rendered=Rendered("sms", "zh", "演练")))
""")


def old_record(path: str, days_ago: int = 40) -> None:
    made = datetime.now(timezone.utc) - timedelta(days=days_ago)
    outbox._append(path, (json.dumps({"time": made.isoformat(), "channel": "sms",
                                      "delivery_id": -1, "announcement_id": 1}) + "\n").encode())


def test_a_send_is_a_line_the_reader_pages_through(tmp_path):
    path = str(tmp_path / "outbox.jsonl")
    channel = OutboxChannel({"path": path, "channel": "sms"})
    for delivery_id in (1, 2, 3):
        receipt = channel.send(Outgoing(delivery_id=delivery_id, announcement_id=9,
                                        address="+8613900000001",
                                        rendered=Rendered("sms", "zh", "【县政府】演练")))
        assert (receipt.provider_id, receipt.status) == (f"outbox-{delivery_id}", "delivered")
    records, total = outbox.read(path, announcement_id=9, offset=1, limit=1)
    assert total == 3 and [(r["delivery_id"], r["text"]) for r in records] == [(2, "【县政府】演练")]


def test_a_naive_cutoff_is_refused_rather_than_deleting_nothing_quietly(tmp_path):
    with pytest.raises(ValueError, match="time zone"):
        outbox.forget_before(str(tmp_path / "outbox.jsonl"), datetime.now() - timedelta(days=1))


def test_retention_rewriting_the_outbox_loses_no_line_workers_append_meanwhile(tmp_path):
    path = str(tmp_path / "outbox.jsonl")
    cutoff = datetime.now(timezone.utc) - timedelta(days=30)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, path, str(n * SENDS_EACH),
                                 str(SENDS_EACH)]) for n in range(WRITERS)]
    rewrites = 0
    while any(writer.poll() is None for writer in writers):
        old_record(path)  # something for each pass to delete, so each one rewrites the file
        rewrites += outbox.forget_before(path, cutoff)
    assert all(writer.wait() == 0 for writer in writers)
    outbox.forget_before(path, cutoff)

    records, total = outbox.read(path, limit=10 ** 6)
    assert sorted(r["delivery_id"] for r in records) == list(range(WRITERS * SENDS_EACH))
    assert total == WRITERS * SENDS_EACH and rewrites > 10  # the rewrites did race the sends
