"""Grid workers nudged by SMS (#18, item 5; gateway.delivery.fieldwork.send_nudges): once per
(notice, grid, worker), only for grids with people left, only once the notice has been out
GRID_NUDGE_AFTER_MINUTES, read back from the SMS outbox; and where the office sees it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from rq.job import Job
from sqlalchemy import select, update

from channels import outbox
from gateway.delivery import fieldwork, providers, queues, reconciler
from gateway.store import accounts, grids
from gateway.store.db import utcnow
from gateway.store.schema import announcements, audit_log, grid_nudges, residents, users
from tests.gateway.conftest import VILLAGE_A, VILLAGE_B
from tests.gateway.console.conftest import csrf_token, login, page, released

pytestmark = pytest.mark.integration

GRID_A = VILLAGE_A + "001"
GRID_EMPTY = VILLAGE_B + "009"
PHONE_A = "+8613900000001"
PHONE_EMPTY = "+8613900000002"


@pytest.fixture
def field(app, county):
    """Grid A (张伟, 李娜) worked by ``worker_a``; a grid nobody lives in by ``worker_empty``;
    ``worker_nophone`` also works grid A but has no phone."""
    with app.extensions["engine"].begin() as conn:
        grids.add_grid(conn, GRID_A, "一组", "test")
        grids.add_grid(conn, GRID_EMPTY, "九组", "test")
        for name, grid, phone in (("worker_a", GRID_A, PHONE_A), ("worker_empty", GRID_EMPTY, PHONE_EMPTY),
                                  ("worker_nophone", GRID_A, "")):
            accounts.create_user(conn, name, "grid_worker", f"{name}-password")
            grids.assign(conn, grid, name, "test")
            grids.set_phone(conn, name, phone, "test")
        for name in ("张伟", "李娜"):
            conn.execute(update(residents).where(residents.c.name == name).values(grid=GRID_A))


def _release(app, client, *, severity="severe", minutes_ago=20) -> int:
    announcement_id = released(client)
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(announcements).where(announcements.c.id == announcement_id)
                     .values(severity=severity, sent=utcnow() - timedelta(minutes=minutes_ago)))
    return announcement_id


def _nudges_sent(app) -> list[dict]:
    records, _total = outbox.read(providers.outbox_path(app), channel="sms", limit=10_000)
    return [r for r in records if r["address"] in (PHONE_A, PHONE_EMPTY)]


def test_each_worker_with_a_phone_of_a_grid_with_people_left_is_nudged_once(app, client, field):
    announcement_id = _release(app, client)
    with app.app_context():
        assert fieldwork.send_nudges() == 1
        assert fieldwork.send_nudges() == 0  # a second pass (or host) nudges nobody again
    sent = _nudges_sent(app)
    assert [r["address"] for r in sent] == [PHONE_A]  # not the worker of the empty grid
    assert f"{app.config['PUBLIC_BASE_URL'].rstrip('/')}/grid" in sent[0]["text"]
    assert "还有 2 人未收到" in sent[0]["text"] and GRID_A in sent[0]["text"]
    with app.extensions["engine"].connect() as conn:
        marks = conn.execute(select(grid_nudges.c.announcement_id, grid_nudges.c.grid_code,
                                    users.c.name)
                             .join(users, users.c.id == grid_nudges.c.user_id)).all()
        audited = conn.execute(select(audit_log.c.actor, audit_log.c.target, audit_log.c.detail)
                               .where(audit_log.c.action == "nudge")).all()
    assert [tuple(m) for m in marks] == [(announcement_id, GRID_A, "worker_a")]
    assert len(audited) == 1 and audited[0].target == f"grid:{GRID_A}"
    assert '"worker": "worker_a"' in audited[0].detail and '"left": 2' in audited[0].detail


def test_the_office_sees_when_each_grid_was_nudged(app, client, field):
    announcement_id = _release(app, client)
    with app.app_context():
        fieldwork.send_nudges()
    html = page(client.get(f"/announcements/{announcement_id}/grids"))
    row_a = html.split(f'data-grid="{GRID_A}"')[1].split("</tr>")[0]
    assert '<td class="nudged">–' not in row_a and '<td class="nudged">' in row_a
    csv_text = client.get(f"/announcements/{announcement_id}/grids.csv").get_data(as_text=True)
    header, *lines = csv_text.lstrip("\ufeff").splitlines()
    assert header.endswith("Nudged by SMS") or header.endswith("短信提醒时间")
    line_a = next(line for line in lines if GRID_A in line)
    assert line_a.rsplit(",", 1)[1].startswith(str(utcnow().year))


@pytest.mark.parametrize("severity, minutes_ago", [("severe", 5), ("moderate", 60)])
def test_no_nudge_before_the_time_or_for_a_lesser_notice(app, client, field, severity, minutes_ago):
    _release(app, client, severity=severity, minutes_ago=minutes_ago)
    with app.app_context():
        assert fieldwork.send_nudges() == 0
        assert reconciler.reconcile()["nudges_queued"] == 0
    assert _nudges_sent(app) == []


def test_no_nudge_when_everyone_in_the_grid_was_reached(app, client, field):
    announcement_id = _release(app, client, severity="extreme")
    with app.extensions["engine"].begin() as conn:
        worker = accounts.find_user(conn, "worker_a")
        people = conn.execute(select(residents.c.id).where(residents.c.grid == GRID_A)).scalars()
        for number, resident_id in enumerate(people):
            assert fieldwork.apply_tap(conn, worker, {"id": f"tap-reached-{number}", "outcome": "told",
                                                      "announcement": announcement_id,
                                                      "resident": resident_id})
    with app.app_context():
        assert fieldwork.send_nudges() == 0
    assert _nudges_sent(app) == []


def test_nudges_off_when_the_setting_is_zero(app, client, field):
    _release(app, client)
    app.config["GRID_NUDGE_AFTER_MINUTES"] = 0
    with app.app_context():
        assert fieldwork.send_nudges() == 0
        assert reconciler.reconcile()["nudges_queued"] == 0


def test_the_reconcilers_pass_queues_one_nudge_job_that_nudges(app, client, field):
    _release(app, client)
    with app.app_context():
        assert reconciler.reconcile()["nudges_queued"] == 1
        assert reconciler.reconcile()["nudges_queued"] == 0  # the first still waits
        job = Job.fetch(queues.NUDGES_JOB, connection=queues.connection())
        assert job.origin == "sms" and job.perform() == 1
    assert [r["address"] for r in _nudges_sent(app)] == [PHONE_A]


def test_users_phone_sets_and_clears_a_workers_phone(app, field):
    runner = app.test_cli_runner()
    assert "+8613900000004" in runner.invoke(args=["users", "phone", "worker_nophone",
                                                   "13900000004"]).output
    refused = runner.invoke(args=["users", "phone", "worker_nophone", "12ab"])
    assert refused.exit_code != 0 and "not a valid phone number" in refused.output
    assert runner.invoke(args=["users", "phone", "worker_a"]).exit_code == 0
    with app.extensions["engine"].connect() as conn:
        phones = dict(conn.execute(select(users.c.name, users.c.phone)
                                   .where(users.c.name.in_(["worker_nophone", "worker_a"]))).all())
    assert phones == {"worker_nophone": "+8613900000004", "worker_a": None}


def test_the_admin_sets_a_workers_phone_and_a_bad_one_changes_nothing(app, client, field):
    login(client, "admin")
    token = csrf_token(client, "/grids")
    bad = client.post("/grids", data={"csrf_token": token, "action": "phone",
                                      "worker": "worker_nophone", "phone": "12ab"},
                      follow_redirects=True)
    assert bad.status_code == 200 and "12ab" in page(bad)
    good = client.post("/grids", data={"csrf_token": token, "action": "phone",
                                       "worker": "worker_nophone", "phone": "139 0000 0003"},
                       follow_redirects=True)
    assert good.status_code == 200
    with app.extensions["engine"].connect() as conn:
        phone = conn.execute(select(users.c.phone).where(users.c.name == "worker_nophone")).scalar_one()
        audited = conn.execute(select(audit_log.c.actor).where(audit_log.c.action == "phone",
                                                               audit_log.c.actor == "admin")).all()
    assert phone == "+8613900000003" and len(audited) == 1


def test_a_withdrawal_nudges_for_those_told_the_notice_at_the_door(app, client, field):
    from gateway.delivery import lifecycle, planner
    announcement_id = _release(app, client)
    with app.app_context(), app.extensions["engine"].begin() as conn:
        fieldwork.apply_tap(conn, accounts.find_user(conn, "worker_a"), {
            "id": "tap-at-the-door", "announcement": announcement_id,
            "resident": conn.execute(select(residents.c.id).where(residents.c.name == "张伟"))
            .scalar_one(), "outcome": "told", "tapped_at": "2026-12-02T06:00:00Z"})
        withdrawal = lifecycle.cancel(conn, announcement_id, accounts.find_user(conn, "author"),
                                      sender="tongbao@test.example.gov.cn").announcement_id
    with app.app_context():
        planner.plan(app.extensions["engine"], withdrawal, app.extensions["policy"])
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(announcements).where(announcements.c.id == withdrawal)
                     .values(sent=utcnow() - timedelta(minutes=20)))
    with app.app_context():
        assert fieldwork.send_nudges() == 1  # the withdrawn notice nudges nobody any more
    (sent,) = _nudges_sent(app)
    assert "已撤销" in sent["text"] and "还有 1 人不知道" in sent["text"], sent["text"]
