"""Severity in China's convention: four colours and levels, one table for every rendering."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from messages import severity, sms, wechat
from messages.render_types import RenderContext

CONTEXT = RenderContext(sms_signature="县人民政府", public_base_url="http://gov.example")


@dataclass
class Notice:
    id: int = 7
    headline: str = "山洪预警"
    body: str = "上游降雨。"
    instruction: str = "请远离河道。"
    status: str = "actual"
    msg_type: str = "alert"
    severity: str = "extreme"
    language: str = "zh"
    sent: object = None


@pytest.mark.parametrize("value, zh, en", [
    ("extreme", "特别严重/红色·I级", "Red · Level I (extreme)"),
    ("severe", "严重/橙色·II级", "Orange · Level II (severe)"),
    ("moderate", "较重/黄色·III级", "Yellow · Level III (moderate)"),
    ("minor", "一般/蓝色·IV级", "Blue · Level IV (minor)"),
])
def test_each_severity_has_its_colour_and_level(value, zh, en):
    assert severity.label(value, "zh") == zh
    assert severity.label(value, "en") == en


def test_an_unknown_severity_is_shown_as_given():
    assert severity.label("unknown", "zh") == "unknown"
    assert severity.warning("unknown", "zh") == ""


def test_the_sms_opens_with_the_warning_colour_after_the_drill_marker():
    text = sms.render(Notice(status="exercise"), "zh", CONTEXT).text
    assert text.startswith("【县人民政府】【演练】【红色预警】山洪预警")
    english = sms.render(Notice(headline="Flash flood", language="en", severity="minor"), "en",
                         CONTEXT).text
    assert "[Blue warning] Flash flood" in english


def test_a_headline_naming_a_colour_and_a_withdrawal_carry_no_tag():
    assert "【红色预警】" not in sms.render(Notice(headline="暴雨橙色预警"), "zh", CONTEXT).text
    assert "预警】" not in sms.render(Notice(msg_type="cancel"), "zh", CONTEXT).text


def test_wechat_title_and_group_post_name_the_level():
    title = wechat.render(Notice(), "zh", CONTEXT).data["template"]["thing1"]["value"]
    assert title == "【红色预警】山洪预警"
    post = wechat.render_group_markdown(Notice(severity="moderate"), "zh", CONTEXT)
    assert post.startswith("### 【黄色预警】山洪预警\n> 预警级别：较重/黄色·III级\n")


def test_an_english_headline_naming_a_colour_gets_no_tag():
    notice = Notice(headline="Red rainstorm warning", language="en", severity="moderate")
    assert sms.render(notice, "en", CONTEXT).text.startswith("【县人民政府】Red rainstorm warning")
    assert severity.names_a_warning("Orange typhoon warning", "en")
    assert not severity.names_a_warning("Flood warning", "en")


def test_the_wechat_title_keeps_room_for_the_headline():
    """WeChat's title holds 20 characters: "[Yellow warning] " would leave three."""
    notice = Notice(headline="Flash flood on the Qin River", language="en", severity="moderate")
    title = wechat.render(notice, "en", CONTEXT).data["template"]["thing1"]["value"]
    assert title == "Flash flood on the …"
    drill = Notice(headline="县" * 30, status="exercise")
    assert wechat.render(drill, "zh", CONTEXT).data["template"]["thing1"]["value"] == \
        "【演练】【红色预警】" + "县" * 9 + "…"
