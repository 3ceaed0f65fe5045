"""Plays without their acks are sent again, and fail after MAX_ATTEMPTS sends."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from channels.loudspeaker import protocol
from gateway.delivery import loudspeakers
from gateway.store.db import as_utc
from tests.conftest import run_jobs
from tests.gateway.loudspeakers.conftest import (
    EAST,
    WAIT,
    device_says,
    mqtt_client,
    speaker_deliveries,
    statuses,
    wait_for,
)
from tests.gateway.test_fanout import publish

pytestmark = pytest.mark.integration


def test_an_unacknowledged_command_is_sent_again_then_failed(app, api, speakers):
    silent = speakers.register(EAST)  # nobody plays: only an eavesdropper on its topic
    heard = []
    with mqtt_client(f"eavesdrop-{silent}") as client:
        subscribed = threading.Event()
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = lambda _c, _u, message: heard.append(json.loads(message.payload))
        client.subscribe(protocol.commands_topic(silent), qos=1)
        assert subscribed.wait(WAIT)
        announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
        run_jobs(app)
        outcomes = []
        for _ in range(3):
            outcomes.append(loudspeakers.resend_unacknowledged(app, timedelta(0)))
            run_jobs(app)
        wait_for(lambda: len(heard) == 3, "three sends")
    assert outcomes == [{"resent": 1, "failed": 0}, {"resent": 1, "failed": 0},
                        {"resent": 0, "failed": 1}]
    assert len({command["command_id"] for command in heard}) == 1
    assert len({command["sequence"] for command in heard}) == 3
    delivery = speaker_deliveries(app, announcement_id)[silent]
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.last_error == "no acknowledgement from the device after 3 sends"


def test_a_received_play_whose_played_ack_is_lost_is_asked_again(app, api, speakers):
    quiet = speakers.register(EAST)  # no controller: the test speaks for the device
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    sent = speaker_deliveries(app, announcement_id)[quiet]
    device_says((quiet, {"event": "received", "command_id": sent.provider_id}))
    wait_for(lambda: statuses(app, announcement_id)[quiet] == "delivered", "the received ack")
    assert loudspeakers.resend_unacknowledged(app, timedelta(0)) == {"resent": 1, "failed": 0}
    run_jobs(app)
    again = speaker_deliveries(app, announcement_id)[quiet]
    assert (again.status, again.attempts, again.provider_id) == ("sent", 2, sent.provider_id)
    device_says((quiet, {"event": "played", "command_id": again.provider_id, "duplicate": True}))
    wait_for(lambda: statuses(app, announcement_id)[quiet] == "confirmed", "the played ack")


def test_after_the_broker_lost_its_sessions_every_unacknowledged_play_is_asked_again_at_once(
        app, api, speakers):
    received, silent = speakers.register(EAST), speakers.register(EAST)  # the test speaks for both
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    first = speaker_deliveries(app, announcement_id)
    device_says((received, {"event": "received", "command_id": first[received].provider_id}))
    wait_for(lambda: statuses(app, announcement_id)[received] == "delivered", "the received ack")
    an_hour = timedelta(hours=1)  # neither is due by the ordinary rule
    assert loudspeakers.resend_unacknowledged(app, an_hour) == {"resent": 0, "failed": 0}
    restarted = loudspeakers.resend_unacknowledged(
        app, an_hour, ask_all_sent_before=max(as_utc(d.updated_at) for d in first.values()) + an_hour)
    assert restarted == {"resent": 2, "failed": 0}
    run_jobs(app)
    again = speaker_deliveries(app, announcement_id)
    assert {device: (row.status, row.attempts) for device, row in again.items()} == {
        received: ("sent", 1), silent: ("sent", 1)}  # the broker's restart costs no try
