"""The hotline's prompts (messages/hotline.py): menus made from area names, counts, the keys
offered after a notice, and what is said when nothing is in force."""
from __future__ import annotations

from datetime import datetime, timezone

from messages import hotline
from messages.render_types import RenderContext


def test_a_menu_offers_the_whole_area_on_1_then_each_area_beneath():
    said = hotline.menu("zh", "沙埠镇", ["沙埠村", "新屋村"], duty=True)
    assert said == "收听沙埠镇全境的通知，请按1。沙埠村，请按2。新屋村，请按3。转接值班人员，请按0。"
    assert hotline.menu("en", None, ["Town A", "Town B"], duty=False) == \
        "Please choose your area. For Town A, press 1. For Town B, press 2."


def test_more_than_nine_choices_are_keyed_in_and_ended_with_hash():
    villages = [f"{n}村" for n in range(1, 10)]
    said = hotline.menu("zh", "大寺镇", villages, duty=False)
    assert "9村，请按10。" in said and said.endswith("输入号码后请按井号键。")
    assert "井号" not in hotline.menu("zh", "大寺镇", villages[:8], duty=False)


def test_the_keys_after_a_notice_offer_1_only_to_a_roster_caller():
    assert hotline.choices("zh", confirm=True, duty=False) == "确认收到请按1，重听请按2，下一条请按3。"
    assert hotline.choices("zh", confirm=False, duty=True) == "重听请按2，下一条请按3。转接值班人员，请按0。"
    assert hotline.choices("en", confirm=True, duty=False) == (
        "Press 1 to confirm you heard this notice. "
        "Press 2 to hear it again, 3 for the next notice.")


def test_no_notice_says_when_the_last_was_issued_in_beijing_time():
    issued = datetime(2026, 12, 1, 22, 5, tzinfo=timezone.utc)
    beijing = RenderContext()
    assert hotline.no_notice("zh", "沙埠村", issued, beijing) == \
        "沙埠村现在没有生效的通知。最近一条通知发布于2026年12月2日06:05。"
    assert hotline.no_notice("en", None, issued, beijing) == (
        "There is no notice in force for your area now. The last notice was issued on "
        "2026-12-02 06:05 (UTC+8).")
    assert hotline.no_notice("zh", "沙埠村", None, beijing) == "沙埠村还没有发布过通知。"
    assert hotline.no_notice("zh", "沙埠村", issued, RenderContext(time_zone="Asia/Urumqi")) \
        .endswith("最近一条通知发布于2026年12月2日04:05。")  # the office's zone, UTC+6


def test_a_caller_of_another_language_gets_the_prompts_of_its_family():
    assert hotline.prompt_language("yue") == "zh" and hotline.prompt_language(None) == "zh"
    assert hotline.prompt_language("en") == "en"
    assert hotline.count("yue", "沙埠村", 3) == "沙埠村现有3条生效的通知。"
