"""gateway/delivery/lifecycle.py: who may approve, which states allow what, cancel and its
correction, an update superseding its original, texts by language, and the follow-up jobs."""
from __future__ import annotations

import pytest
import redis
from sqlalchemy import func, select

from gateway.delivery import lifecycle, queues
from gateway.store.schema import announcements
from messages.announcement import ValidationError, parse_announcement
from messages.render_types import RenderContext
from messages.withdrawal import withdrawal_notice
from tests.gateway.conftest import announcement
from tests.gateway.delivery.conftest import (SENDER, create, ledger_rows, planned, released,
                                             row_of, user)

pytestmark = pytest.mark.integration

ENGLISH = {"language": "en", "headline": "Red rainstorm warning",
           "body": "Torrential rain is expected within 3 hours."}


def state_of(app, announcement_id: int) -> str:
    with app.extensions["engine"].connect() as conn:
        return row_of(conn, announcement_id).state


def count_announcements(app) -> int:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(func.count()).select_from(announcements)).scalar_one()


@pytest.mark.parametrize("author, approver, status, refused", [
    ("author", "approver", "actual", None),
    ("approver", "admin", "actual", None),
    ("approver", "approver", "exercise", None),        # a drill needs no second person
    ("approver", "approver", "actual", (403, "two-person rule")),
    ("author", "author", "exercise", (403, "only an approver or an admin")),
])
def test_who_may_approve(app, county, author, approver, status, refused):
    announcement_id = create(app, by=author, status=status)
    with app.extensions["engine"].begin() as conn:
        deciding = user(conn, approver)
        if refused:
            with pytest.raises(lifecycle.ActionRefused) as caught:
                lifecycle.approve(conn, announcement_id, deciding)
            assert caught.value.status == refused[0] and refused[1] in caught.value.message
        else:
            outcome = lifecycle.approve(conn, announcement_id, deciding)
            assert (outcome.announcement_id, outcome.to_plan, outcome.to_stop) == \
                (announcement_id, [announcement_id], [])
        row = row_of(conn, announcement_id)
    if refused:
        assert (row.state, row.approver_id, row.sent) == ("awaiting_approval", None, None)
    else:
        assert (row.state, row.approver_id) == ("approved", deciding.id) and row.sent is not None


def test_only_what_awaits_approval_is_approved_or_rejected(app, county):
    draft = create(app, status="draft")
    rejected = create(app)
    with app.extensions["engine"].begin() as conn:
        approver = user(conn, "approver")
        lifecycle.reject(conn, rejected, approver, "  数字有误  ")
        assert (row_of(conn, rejected).decision_note, row_of(conn, rejected).approver_id) == \
            ("数字有误", approver.id)
    approved, cancelled = released(app), create(app)
    with app.extensions["engine"].begin() as conn:
        lifecycle.cancel(conn, cancelled, user(conn, "author"), sender=SENDER)
    for announcement_id, state in ((draft, "draft"), (rejected, "rejected"),
                                   (approved, "approved"), (cancelled, "cancelled")):
        with app.extensions["engine"].begin() as conn:
            for action in (lambda: lifecycle.approve(conn, announcement_id, approver),
                           lambda: lifecycle.reject(conn, announcement_id, approver, "no")):
                with pytest.raises(lifecycle.ActionRefused) as caught:
                    action()
                assert caught.value.status == 409
                assert f"is {state}, not awaiting approval" in caught.value.message
        assert state_of(app, announcement_id) == state


def test_cancel_before_release_withdraws_it_with_no_correction(app, county):
    announcement_id = create(app)
    before = count_announcements(app)
    with app.extensions["engine"].begin() as conn:
        outcome = lifecycle.cancel(conn, announcement_id, user(conn, "author"),
                                   correction="写错了地区", sender=SENDER)
        row = row_of(conn, announcement_id)
    assert (outcome.to_plan, outcome.to_stop) == ([], [])
    assert (row.state, row.decision_note) == ("cancelled", "写错了地区")
    assert count_announcements(app) == before


BEIJING = RenderContext(time_zone="Asia/Shanghai")  # OFFICE_TIMEZONE unset


@pytest.mark.parametrize("correction", ["", " 雨量数据有误，应为50毫米。 "])
def test_cancel_after_release_sends_the_fixed_withdrawal_notice_in_every_language(app, county,
                                                                                 correction):
    original = planned(app, translations=[ENGLISH])
    with app.extensions["engine"].begin() as conn:
        approver = user(conn, "approver")  # not the author: no second person is needed
        outcome = lifecycle.cancel(conn, original, approver, correction=correction,
                                   sender=SENDER)
        first, withdrawal = row_of(conn, original), row_of(conn, outcome.announcement_id)
        english = lifecycle.in_language(conn, withdrawal, "en")
    assert (outcome.to_plan, outcome.to_stop) == ([withdrawal.id], [original])
    assert (first.state, first.finished_at is not None) == ("cancelled", True)
    assert {(row.status, row.last_error) for row in ledger_rows(app, original)} == \
        {("cancelled", "cancelled by approver")}
    assert (withdrawal.state, withdrawal.msg_type, withdrawal.supersedes_id) == \
        ("approved", "cancel", original)
    assert (withdrawal.author_id, withdrawal.approver_id) == (approver.id, None)
    assert withdrawal.references == f"{first.sender},{first.identifier},{first.sent.isoformat()}"
    # Whatever was typed, only the fixed wording goes out: the headline, the time, withdrawn.
    assert (withdrawal.headline, withdrawal.body, withdrawal.instruction) == \
        (first.headline, withdrawal_notice("zh", first.headline, first.sent, BEIJING), "")
    assert (english.headline, english.body) == \
        (ENGLISH["headline"], withdrawal_notice("en", ENGLISH["headline"], first.sent, BEIJING))
    assert withdrawal.body.startswith("此前发布的通知已撤销：“暴雨红色预警”")
    assert english.body.startswith("Withdrawn: the notice “Red rainstorm warning”")
    assert "雨量" not in withdrawal.body + english.body
    assert (withdrawal.status, withdrawal.severity, withdrawal.areas, withdrawal.channels) == \
        (first.status, first.severity, first.areas, first.channels)
    assert outcome.update_id is None if not correction else outcome.update_id > withdrawal.id


def test_the_withdrawal_notice_says_the_time_in_the_offices_time_zone(app, county):
    original = planned(app)
    with app.extensions["engine"].begin() as conn:  # Urumqi: UTC+6, two hours behind Beijing
        outcome = lifecycle.cancel(conn, original, user(conn, "approver"), sender=SENDER,
                                   time_zone="Asia/Urumqi")
        first, withdrawal = row_of(conn, original), row_of(conn, outcome.announcement_id)
    urumqi = RenderContext(time_zone="Asia/Urumqi")
    assert withdrawal.body == withdrawal_notice("zh", first.headline, first.sent, urumqi)
    assert withdrawal.body != withdrawal_notice("zh", first.headline, first.sent, BEIJING)


def test_a_correction_given_with_a_cancel_is_an_update_awaiting_a_second_person(app, county):
    original = planned(app)
    with app.extensions["engine"].begin() as conn:
        canceller = user(conn, "approver")
        outcome = lifecycle.cancel(conn, original, canceller, correction=" 雨量数据有误。 ",
                                   sender=SENDER)
        first, correction = row_of(conn, original), row_of(conn, outcome.update_id)
    assert outcome.update_id not in outcome.to_plan  # nothing typed goes out unreviewed
    assert (correction.msg_type, correction.state, correction.supersedes_id, correction.status) \
        == ("update", "awaiting_approval", original, "actual")
    assert (correction.headline, correction.body) == ("【更正】" + first.headline, "雨量数据有误。")
    assert (correction.author_id, correction.approver_id) == (canceller.id, None)
    with app.extensions["engine"].begin() as conn:
        with pytest.raises(lifecycle.ActionRefused) as caught:
            lifecycle.approve(conn, correction.id, canceller)
        assert "two-person rule" in caught.value.message
        approved = lifecycle.approve(conn, correction.id, user(conn, "admin"))
    assert (approved.to_plan, approved.to_stop) == ([correction.id], [])
    assert state_of(app, original) == "cancelled"  # already withdrawn: not superseded again


def test_a_correction_may_not_be_too_long(app, county):
    original = released(app)
    with app.extensions["engine"].begin() as conn:
        with pytest.raises(ValidationError) as caught:
            lifecycle.cancel(conn, original, user(conn, "author"), correction="长" * 4001,
                             sender=SENDER)
    assert caught.value.field == "correction"
    assert state_of(app, original) == "approved"


def test_a_withdrawal_notice_cannot_itself_be_cancelled(app, county):
    original = released(app)
    with app.extensions["engine"].begin() as conn:
        withdrawal = lifecycle.cancel(conn, original, user(conn, "author"),
                                      sender=SENDER).announcement_id
    before = count_announcements(app)
    with app.extensions["engine"].begin() as conn:
        with pytest.raises(lifecycle.ActionRefused) as caught:
            lifecycle.cancel(conn, withdrawal, user(conn, "admin"), correction="更正",
                             sender=SENDER)
    assert caught.value.status == 409 and "itself a withdrawal notice" in caught.value.message
    assert state_of(app, withdrawal) == "approved" and count_announcements(app) == before


def test_what_is_over_cannot_be_cancelled_again(app, county):
    rejected, cancelled = create(app), released(app)
    with app.extensions["engine"].begin() as conn:
        lifecycle.reject(conn, rejected, user(conn, "approver"), "重复")
        lifecycle.cancel(conn, cancelled, user(conn, "author"), sender=SENDER)
    before = count_announcements(app)
    for announcement_id, state in ((rejected, "rejected"), (cancelled, "cancelled")):
        with app.extensions["engine"].begin() as conn:
            with pytest.raises(lifecycle.ActionRefused) as caught:
                lifecycle.cancel(conn, announcement_id, user(conn, "admin"), correction="更正",
                                 sender=SENDER)
        assert caught.value.status == 409 and f"already {state}" in caught.value.message
    assert count_announcements(app) == before  # no second correction


@pytest.mark.parametrize("reference", ["identifier", "number"])
def test_an_update_supersedes_the_last_announcement_it_references_once_approved(app, county,
                                                                                reference):
    other, original = released(app), planned(app)
    with app.extensions["engine"].connect() as conn:
        named = row_of(conn, original).identifier if reference == "identifier" else str(original)
        older = row_of(conn, other).identifier
    update = create(app, msg_type="update", references=f"{older},{named}",
                    body="雨势减弱。")
    with app.extensions["engine"].connect() as conn:
        assert row_of(conn, update).supersedes_id == original
    assert state_of(app, original) == "sending"  # still live until the update is approved
    with app.extensions["engine"].begin() as conn:
        outcome = lifecycle.approve(conn, update, user(conn, "approver"))
    assert (outcome.to_plan, outcome.to_stop) == ([update], [original])
    assert (state_of(app, original), state_of(app, other)) == ("superseded", "approved")
    assert {(row.status, row.last_error) for row in ledger_rows(app, original)} == \
        {("cancelled", "superseded by approver")}


@pytest.mark.parametrize("msg_type", ["update", "cancel"])
@pytest.mark.parametrize("original_status, status", [("actual", "test"), ("actual", "exercise"),
                                                     ("exercise", "actual")])
def test_a_drill_never_updates_or_cancels_a_real_notice_nor_the_reverse(app, county, msg_type,
                                                                        original_status, status):
    original = planned(app, status=original_status)
    before = count_announcements(app)
    with app.extensions["engine"].begin() as conn:
        with pytest.raises(ValidationError) as caught:
            lifecycle.create(conn, parse_announcement(announcement(
                status=status, msg_type=msg_type, references=str(original))),
                user(conn, "author"), sender=SENDER)
    assert caught.value.field == "status"
    assert f"status {status} differs from the {original_status} status" in caught.value.message
    assert count_announcements(app) == before and state_of(app, original) == "sending"


def test_an_update_stored_with_another_status_than_its_original_is_never_approved(app, county):
    original = planned(app)
    update = create(app, msg_type="update", references=str(original))
    with app.extensions["engine"].begin() as conn:  # as an older gateway let it be stored
        conn.execute(announcements.update().where(announcements.c.id == update)
                     .values(status="test"))
    with app.extensions["engine"].begin() as conn:
        with pytest.raises(lifecycle.ActionRefused) as caught:
            lifecycle.approve(conn, update, user(conn, "approver"))
    assert caught.value.status == 422 and "differs from the actual status" in caught.value.message
    assert (state_of(app, update), state_of(app, original)) == ("awaiting_approval", "sending")


def test_texts_by_language(app, county):
    announcement_id = create(app, translations=[ENGLISH])
    with app.extensions["engine"].connect() as conn:
        row = row_of(conn, announcement_id)
        assert lifecycle.languages(conn, row) == ["zh", "en"]
        english = lifecycle.in_language(conn, row, "en")
        assert (english.language, english.headline, english.body, english.instruction) == \
            ("en", ENGLISH["headline"], ENGLISH["body"], "")
        assert (english.id, english.severity, english.areas) == (row.id, row.severity, row.areas)
        assert lifecycle.in_language(conn, row, "zh") is row
        assert lifecycle.in_language(conn, row, "ug") is row  # no text in it: as it is


def test_follow_up_queues_the_plan_and_the_stop_and_survives_a_lost_redis(app, monkeypatch):
    outcome = lifecycle.Outcome(7, [7], [3])
    with app.app_context():
        assert lifecycle.follow_up(outcome) is True
        assert [job.args for job in queues.queue("plan").jobs] == [(7,)]
        assert [job.args for job in queues.queue("loudspeaker").jobs] == [(3,)]

        def unreachable(announcement_id):
            raise redis.ConnectionError("Connection refused")

        monkeypatch.setattr(queues, "enqueue_plan", unreachable)
        assert lifecycle.follow_up(lifecycle.Outcome(8, [8])) is False
