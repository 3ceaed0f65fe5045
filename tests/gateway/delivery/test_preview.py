"""gateway/delivery/preview.py: what an announcement will do, before it is approved — the same
deliveries the plan then writes, weak and unreachable groups, loudspeakers, SMS parts and cost."""
from __future__ import annotations

import pytest
from sqlalchemy import func, or_, select, update

from gateway.delivery import lifecycle, preview
from gateway.store import roster
from gateway.store.schema import devices, residents
from tests.gateway.conftest import OTHER_DISTRICT_VILLAGE, VILLAGE_A, VILLAGE_B, person
from tests.gateway.delivery.conftest import create, ledger_rows, plan, row_of, user

TOWN = VILLAGE_A[:9]


def preview_of(app, announcement_id) -> dict:
    with app.app_context(), app.extensions["engine"].connect() as conn:
        return preview.preview(conn, row_of(conn, announcement_id))


def approve_and_plan(app, announcement_id) -> dict[str, int]:
    with app.extensions["engine"].begin() as conn:
        lifecycle.approve(conn, announcement_id, user(conn, "approver"))
    plan(app, announcement_id)
    written: dict[str, int] = {}
    for row in ledger_rows(app, announcement_id):
        written[row.channel] = written.get(row.channel, 0) + 1
    return written


@pytest.fixture
def robots(app, county):
    with app.extensions["engine"].begin() as conn:
        roster.add_robot(conn, "沙埠村群", VILLAGE_A, "robot-key-1")
        roster.add_robot(conn, "大寺村群", OTHER_DISTRICT_VILLAGE, "robot-key-2")


@pytest.mark.integration
@pytest.mark.parametrize("fields", [
    {"status": "test"},
    {"status": "exercise", "channels": ["wechat", "loudspeaker"]},
    {"severity": "extreme"},
    {"channels": ["wechat"]},
    {"areas": [VILLAGE_B, OTHER_DISTRICT_VILLAGE], "channels": ["sms", "voice", "wechat"]},
    {"areas": ["450700"], "severity": "severe"},
], ids=["test", "exercise", "extreme", "wechat-and-robots", "two-villages", "prefecture"])
def test_the_preview_counts_the_deliveries_the_plan_writes(app, robots, fields):
    announcement_id = create(app, **fields)
    expected = preview_of(app, announcement_id)
    assert expected["deliveries"] == approve_and_plan(app, announcement_id)
    drill = fields.get("status") in ("test", "exercise")
    condition = [roster.beneath(residents.c.area_code, fields.get("areas", ["450702"]))]
    if drill:
        condition.append(residents.c.test_audience.is_(True))
    with app.extensions["engine"].connect() as conn:
        audience = conn.execute(select(func.count()).select_from(residents)
                                .where(*condition)).scalar_one()
    assert expected["residents"] == audience
    assert sum(segment["residents"] for segment in expected["segments"]) == audience


@pytest.mark.integration
def test_weak_and_unreachable_groups_count_only_loudspeakers_that_are_online(app, county):
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [person("无联系", VILLAGE_A)])  # no phone, no WeChat
        conn.execute(update(devices).where(devices.c.device_id == "spk-a").values(online=False))
    result = preview_of(app, create(app))
    assert result["villages_with_loudspeaker"] == 1  # village B's; A's device is offline
    young = {(s["town"], s["age_band"], s["impairment"]): s for s in result["segments"]}[
        (TOWN, "18-39", "none")]
    # In A one channel is all that reaches them now; in B the loudspeaker makes a second.
    assert (young["residents"], young["fewer_than_two_channels"], young["unreachable"]) == (5, 4, 1)
    assert young["channels"] == {"wechat": 2, "sms": 2}
    # The blind resident of A: a call and an SMS to one handset are one path, and A's loudspeaker
    # is offline.
    assert [s["impairment"] for s in result["weak_segments"]] == ["none", "visual"]


@pytest.mark.integration
def test_a_long_message_costs_every_sms_part(app, county):
    announcement_id = create(app, body="预计未来3小时有特大暴雨，请注意防范。" * 8, severity="severe")
    result = preview_of(app, announcement_id)
    parts = result["sms"]["segments_per_message"]
    assert parts > 1 and result["sms"]["encoding"] == "UCS-2"
    assert result["cost"]["sms"] == round(result["deliveries"]["sms"] * parts
                                          * app.config["SMS_PRICE"], 2)
    assert result["cost"]["voice"] == round(result["deliveries"]["voice"]
                                            * app.config["VOICE_PRICE"], 2)
    assert result["escalation"]["vulnerable_must_confirm"] is True
    overall = result["seconds_to_complete"]
    assert overall["overall"] == max(overall["per_channel"].values())


@pytest.mark.parametrize("age, band", [(None, "unknown"), (0, "0-17"), (17, "0-17"),
                                       (18, "18-39"), (39, "18-39"), (40, "40-64"),
                                       (64, "40-64"), (65, "65+"), (104, "65+")])
def test_age_bands(age, band):
    assert preview.age_band(age) == band


@pytest.mark.parametrize("visually, hearing, label", [
    (False, False, "none"), (True, False, "visual"), (False, True, "hearing"),
    (True, True, "visual+hearing")])
def test_impairment_labels(visually, hearing, label):
    assert preview.impairment(visually, hearing) == label


@pytest.mark.integration
def test_the_demo_county_names_its_deaf_residents_with_a_phone_only_as_thin(app):
    """Issue 25: the loudspeaker no longer counts for the deaf, nor a call beside an SMS."""
    from gateway.cli import seed_demo
    from gateway.store.schema import grid_workers, residents

    with app.app_context():
        seed_demo()
    announcement_id = create(app, areas=["450700"], severity="extreme")
    result = preview_of(app, announcement_id)
    hearing = [s for s in result["weak_segments"] if s["impairment"] == "hearing"]
    assert hearing and all(s["suggestions"] for s in hearing)
    with app.extensions["engine"].connect() as conn:
        deaf_phone_only = conn.execute(
            select(func.count()).select_from(residents)
            .where(residents.c.hearing_impaired.is_(True), residents.c.visually_impaired.is_(False),
                   residents.c.phone.is_not(None), residents.c.wechat_openid.is_(None),
                   # a grid worker's visit is their second path where their grid has one
                   or_(residents.c.grid.is_(None),
                       residents.c.grid.not_in(select(grid_workers.c.grid_code))))).scalar_one()
    assert deaf_phone_only > 0
    assert sum(s["fewer_than_two_channels"] for s in hearing) >= deaf_phone_only
    segment = hearing[0]
    with app.app_context(), app.extensions["engine"].connect() as conn:
        thin = preview.thin_residents(conn, row_of(conn, announcement_id), segment["town"],
                                      segment["age_band"], "hearing")
    assert len(thin) == segment["fewer_than_two_channels"]
    assert all(len(p["paths"]) < 2 and "loudspeaker" not in p["paths"] for p in thin)


@pytest.mark.integration
def test_a_number_marked_invalid_is_previewed_as_the_plan_writes_it(app, county):
    blind = "+8613800000013"
    with app.extensions["engine"].begin() as conn:
        resident_id = conn.execute(select(residents.c.id)
                                   .where(residents.c.phone == blind)).scalar_one()
        roster.mark_phone_invalid(conn, resident_id, blind, "[21211] invalid phone number")
    announcement_id = create(app, channels=["sms", "voice", "wechat"], areas=[VILLAGE_A])
    expected = preview_of(app, announcement_id)
    assert expected["deliveries"] == approve_and_plan(app, announcement_id)
    assert expected["deliveries"].get("voice", 0) == 0  # the only call in the village was theirs
