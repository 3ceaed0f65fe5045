"""The issue's "done when": from approval to the villages' loudspeakers and back, with real controllers."""
from __future__ import annotations

import pytest

from devices.controller.players import read_sink
from tests.conftest import run_jobs
from tests.gateway.loudspeakers.conftest import (
    EAST,
    VILLAGES,
    WEST,
    coverage,
    device,
    speaker_deliveries,
    statuses,
    synthesized,
    wait_for,
)
from tests.gateway.test_fanout import publish

pytestmark = pytest.mark.integration


def test_two_of_three_villages_hear_the_notice_and_show_confirmed(app, api, speakers):
    east, west, south = (speakers.start(village) for village, _ in VILLAGES)
    announcement_id = publish(api, areas=[EAST, WEST], channels=["loudspeaker"])
    run_jobs(app)
    wait_for(lambda: statuses(app, announcement_id) == {east: "confirmed", west: "confirmed"},
             "both villages confirmed")
    for played_by in (east, west):
        [record] = speakers.heard(played_by)
        assert record["announcement_id"] == announcement_id
        assert "暴雨红色预警" in record["text"] and record["drill"] is False
        assert record["audio_sha256"] in synthesized(app)  # downloaded and checked by the device
    assert read_sink(speakers.sink(south)) == []
    assert coverage(app, announcement_id) == [
        {"area_code": EAST, "name": "东山村", "devices": 1, "played": 1, "offline": [], "reached": True},
        {"area_code": WEST, "name": "西岭村", "devices": 1, "played": 1, "offline": [], "reached": True}]


def test_a_drill_plays_only_on_the_test_device(app, api, speakers):
    tester = speakers.start(EAST, test_device=True)
    ordinary = speakers.start(EAST)
    announcement_id = publish(api, status="Exercise", areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    wait_for(lambda: statuses(app, announcement_id) == {tester: "confirmed"}, "the drill played")
    [record] = speakers.heard(tester)
    assert record["drill"] is True and "演练" in record["text"]
    assert read_sink(speakers.sink(ordinary)) == []


def test_a_killed_controller_shows_offline_and_its_village_unreached(app, api, speakers):
    east, west = speakers.start(EAST), speakers.start(WEST)
    speakers.kill(west)
    wait_for(lambda: device(app, west).online is False, "the last will")
    assert device(app, west).last_seen is not None
    announcement_id = publish(api, areas=[EAST, WEST], channels=["loudspeaker"])
    run_jobs(app)
    wait_for(lambda: statuses(app, announcement_id)[east] == "confirmed", "the online village")
    assert statuses(app, announcement_id)[west] == "sent"
    assert [(v["area_code"], v["played"], v["offline"], v["reached"])
            for v in coverage(app, announcement_id)] == [(EAST, 1, [], True), (WEST, 0, [west], False)]


def test_cancel_stops_a_device_holding_the_command(app, api, speakers):
    holder = speakers.start(EAST, play_seconds=600)
    announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
    run_jobs(app)
    wait_for(lambda: speakers.heard(holder, "started"), "the play to start")
    cancelled = api("author").post(f"/api/v1/announcements/{announcement_id}/cancel")
    assert cancelled.status_code == 200, cancelled.json
    run_jobs(app)  # the cancel queued the stop
    wait_for(lambda: speakers.heard(holder, "interrupted"), "the play to stop")
    wait_for(lambda: "stopped on the device" in (speaker_deliveries(app, announcement_id)[holder]
                                                 .last_error or ""), "the stopped ack")
    [interrupted] = speakers.heard(holder, "interrupted")
    assert interrupted["announcement_id"] == announcement_id
    assert statuses(app, announcement_id) == {holder: "delivered"}
