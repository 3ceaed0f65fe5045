"""messages/withdrawal.py: the fixed withdrawal wording and a correction's headline."""
from __future__ import annotations

from datetime import datetime, timezone

from messages.render_types import RenderContext
from messages.withdrawal import correction_headline, withdrawal_notice

ISSUED = datetime(2026, 12, 1, 22, 5, tzinfo=timezone.utc)  # 06:05 on 2 December in Beijing
BEIJING = RenderContext()  # OFFICE_TIMEZONE's default, Asia/Shanghai


def test_the_withdrawal_says_so_first_then_names_the_notice_and_when_it_was_issued():
    assert withdrawal_notice("zh", "暴雨红色预警", ISSUED, BEIJING) == \
        "此前发布的通知已撤销：“暴雨红色预警”（2026年12月2日06:05发布），请不要理会。"
    assert withdrawal_notice("en", "Red rainstorm warning", ISSUED, BEIJING) == (
        "Withdrawn: the notice “Red rainstorm warning” issued at 2026-12-02 06:05 (UTC+8). "
        "Please disregard it.")


def test_the_time_is_said_in_the_offices_time_zone():
    kathmandu = RenderContext(time_zone="Asia/Kathmandu")  # UTC+5:45: no whole hours
    assert withdrawal_notice("zh", "x", ISSUED, kathmandu) == \
        "此前发布的通知已撤销：“x”（2026年12月2日03:50发布），请不要理会。"
    assert "2026-12-01 19:05 (UTC-3)" in withdrawal_notice(
        "en", "x", ISSUED, RenderContext(time_zone="America/Sao_Paulo"))


def test_a_naive_issue_time_is_the_ledgers_utc():
    assert withdrawal_notice("zh", "x", ISSUED.replace(tzinfo=None), BEIJING) == \
        withdrawal_notice("zh", "x", ISSUED, BEIJING)


def test_a_correction_headline_says_so_and_keeps_within_the_limit():
    assert correction_headline("zh", "暴雨红色预警") == "【更正】暴雨红色预警"
    assert correction_headline("en", "Red rainstorm warning") == "[Correction] Red rainstorm warning"
    assert len(correction_headline("zh", "长" * 140)) == 140
