"""Acks into the ledger: the ones that must change nothing, a batch by the rules, rejections."""
from __future__ import annotations

import logging

import pytest

from channels.loudspeaker import protocol
from gateway.delivery import loudspeakers, queues
from gateway.delivery.loudspeakers.acks import authentic
from tests.conftest import run_jobs
from tests.gateway.loudspeakers.conftest import (
    ACK_KEYS,
    EAST,
    WEST,
    device_says,
    speaker_deliveries,
    statuses,
    wait_for,
)
from tests.gateway.test_fanout import publish

pytestmark = pytest.mark.integration


def test_an_ack_for_another_devices_delivery_changes_nothing(app, api, speakers):
    target = speakers.register(EAST)  # no controller: the play stays "sent"
    intruder = speakers.register(WEST)
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    command_id = speaker_deliveries(app, announcement_id)[target].provider_id
    assert statuses(app, announcement_id) == {target: "sent"}
    device_says((intruder, {"event": "played", "command_id": command_id}),
                (target, {"event": "received", "command_id": command_id}))
    wait_for(lambda: statuses(app, announcement_id)[target] != "sent", "the genuine ack")
    assert statuses(app, announcement_id) == {target: "delivered"}


def test_a_forged_ack_is_refused_logged_and_changes_nothing(app, api, speakers, caplog):
    """The shared Mosquitto takes any publish from anyone (no ACL): only the device's
    signature tells its acks from a forger's."""
    caplog.set_level(logging.WARNING, logger="gateway.delivery.loudspeakers.acks")
    target = speakers.register(EAST)
    legacy = speakers.register(WEST, keyed=False)  # registered before ack keys: not yet rekeyed
    announcement_id = publish(api, areas=[EAST, WEST], channels=["loudspeaker"])
    run_jobs(app)
    sent = speaker_deliveries(app, announcement_id)
    mine, theirs = sent[target].provider_id, sent[legacy].provider_id
    stranger = protocol.SigningKey.generate()
    device_says((target, {"event": "played", "command_id": mine}),
                (target, {"event": "rejected", "command_id": mine, "reason": "audio_hash_mismatch"}),
                key_of=lambda device_id: stranger)
    device_says((target, {"event": "played", "command_id": mine}),
                (legacy, {"event": "played", "command_id": theirs}), key_of=lambda device_id: None)
    legacy_says = protocol.SigningKey.generate()  # whatever key a legacy device might sign with
    device_says((legacy, {"event": "played", "command_id": theirs}), key_of=lambda _: legacy_says)
    device_says((target, {"event": "received", "command_id": mine}))  # the genuine one, last
    wait_for(lambda: statuses(app, announcement_id)[target] != "sent", "the genuine ack")
    assert statuses(app, announcement_id) == {target: "delivered", legacy: "sent"}
    assert speaker_deliveries(app, announcement_id)[target].last_error is None
    # Only this test's devices: the listener hears every device on the shared broker, and the
    # other test worker's loudspeaker tests publish there at the same time.
    refusals = [message for message in (record.getMessage() for record in caplog.records)
                if "refused" in message and (f"{target}'s" in message or f"{legacy}'s" in message)]
    assert len(refusals) == 5, refusals
    assert sum(f"on {target}'s topic" in message and "does not verify" in message
               for message in refusals) == 3
    assert sum(f"on {legacy}'s topic" in message and "no ack key registered" in message
               for message in refusals) == 2


def test_unknown_repeated_and_late_acks_change_nothing(app, api, speakers):
    target = speakers.register(EAST)
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    delivery = speaker_deliveries(app, announcement_id)[target]
    engine = app.extensions["engine"]

    def ack(event, command_id=delivery.provider_id, **fields):
        return loudspeakers.apply_event(engine, target, {"event": event, "command_id": command_id,
                                                         **fields}, max_attempts=3)

    ack("played", command_id="a999-d999")
    ack("played", command_id=f"a{announcement_id + 1}-d{delivery.id}")
    ack("played", command_id="5f0c2d6e8a9b4c1d9e7f6a5b4c3d2e1f")  # a stop's id
    assert statuses(app, announcement_id) == {target: "sent"}
    ack("played")
    ack("played", duplicate=True)
    assert ack("received") is None and ack("rejected", reason="expired") is None
    assert statuses(app, announcement_id) == {target: "confirmed"}
    assert speaker_deliveries(app, announcement_id)[target].last_error is None


def test_a_batch_of_acks_is_recorded_together_each_by_the_rules(app, api, speakers):
    target = speakers.register(EAST)
    other = speakers.register(WEST)
    announcement_id = publish(api, areas=[EAST, WEST], channels=["loudspeaker"])
    run_jobs(app)
    sent = speaker_deliveries(app, announcement_id)
    mine, theirs = sent[target].provider_id, sent[other].provider_id
    with app.extensions["engine"].begin() as conn:
        resends = loudspeakers.record_acks(conn, [
            (target, {"event": "played", "command_id": mine}),
            (target, {"event": "received", "command_id": mine}),  # arrived late: stays played
            (target, {"event": "played", "command_id": theirs}),  # another device's delivery
            (other, {"event": "received", "command_id": theirs}),
            (other, {"event": "played", "command_id": "a999-d999"}),
        ], max_attempts=3)
    assert resends == []
    assert statuses(app, announcement_id) == {target: "confirmed", other: "delivered"}


def test_a_retryable_rejection_is_sent_again_and_a_final_one_fails(app, api, speakers):
    target = speakers.register(EAST)
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    delivery = speaker_deliveries(app, announcement_id)[target]
    device_says((target, {"event": "rejected", "command_id": delivery.provider_id,
                          "reason": "audio_unavailable", "detail": "timed out"}))
    with app.app_context():
        wait_for(lambda: queues.batch_has_live_job(announcement_id, "loudspeaker", delivery.batch),
                 "the retry to be queued")
    assert statuses(app, announcement_id) == {target: "planned"}
    run_jobs(app)
    again = speaker_deliveries(app, announcement_id)[target]
    assert (again.status, again.attempts) == ("sent", 2)
    device_says((target, {"event": "received", "command_id": again.provider_id}),
                (target, {"event": "rejected", "command_id": again.provider_id,
                          "reason": "audio_hash_mismatch"}))
    wait_for(lambda: statuses(app, announcement_id)[target] == "failed", "the final rejection")
    assert speaker_deliveries(app, announcement_id)[target].last_error == \
        "rejected by the device: audio_hash_mismatch"


def test_a_received_is_left_unverified_only_behind_a_genuine_played(app, speakers, monkeypatch):
    """A burst of villages answering at once: the listener verifies a ``received`` only when no
    genuine ``played`` for its command came in the same batch."""
    target = speakers.register(EAST)
    topic = protocol.events_topic(target)

    def signed(event, key=None):
        return target, (key or ACK_KEYS[target]).sign(topic, {"v": 1, "sequence": 1, "at": 1,
                                                              "event": event, "command_id": "a1-d1"})

    checked = []
    verify = protocol.verify_ack
    monkeypatch.setattr(protocol, "verify_ack",
                        lambda topic_, ack, key: checked.append(ack["event"]) or verify(topic_, ack, key))
    with app.extensions["engine"].connect() as conn:
        both = [signed("received"), signed("played")]
        assert authentic(conn, both) == [both[1]]
        assert checked == ["played"]
        forged = [signed("received"), signed("played", protocol.SigningKey.generate())]
        assert authentic(conn, forged) == [forged[0]]
        assert checked == ["played", "played", "received"]
