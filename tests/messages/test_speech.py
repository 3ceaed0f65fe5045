"""The spoken script: who is calling, drill markers, corrections, the repeat, and numbers."""
from __future__ import annotations

from dataclasses import dataclass

from dataclasses import replace

import pytest

from messages.render import RenderContext
from messages.speech import (CallPrompts, call_prompts, render_broadcast, render_call, script,
                             speak_numbers)

CONTEXT = RenderContext(office_name="清水县应急管理局", audio_url="http://gw/media/a1-zh-0.wav")


@dataclass
class Notice:
    id: int = 1
    headline: str = "暴雨橙色预警"
    body: str = "今晚有强降雨。"
    instruction: str = "请远离河道"
    status: str = "actual"
    msg_type: str = "alert"
    severity: str = "severe"
    language: str = "zh"


def test_opens_by_saying_who_is_calling():
    assert script(Notice(), "zh", CONTEXT).startswith("这里是清水县应急管理局")
    english = script(Notice(headline="Flood", body="Rain.", instruction=""), "en",
                     RenderContext(office_name="Qingshui Emergency Office"))
    assert english.startswith("This is Qingshui Emergency Office")


def test_an_english_script_names_the_english_office_name_and_a_chinese_one_the_chinese():
    context = RenderContext(office_name="清水县应急管理局", office_name_en="Qingshui Emergency Office")
    english = script(Notice(headline="Flood", body="Rain.", instruction=""), "en", context)

    assert english.startswith("This is Qingshui Emergency Office")
    assert "清水县" not in english
    assert script(Notice(), "zh", context).startswith("这里是清水县应急管理局")


def test_says_headline_body_and_instruction_in_order():
    spoken = script(Notice(), "zh", CONTEXT)
    headline, body, instruction = (spoken.index("暴雨橙色预警"), spoken.index("今晚有强降雨"),
                                   spoken.index("请远离河道"))
    assert headline < body < instruction


def test_whole_message_is_repeated_once():
    spoken = script(Notice(), "zh", CONTEXT)
    first, _, second = spoken.partition(" 再播报一遍。 ")
    assert first == second
    assert spoken.count("这里是清水县应急管理局") == 2
    assert spoken.count("暴雨橙色预警") == 2


@pytest.mark.parametrize(("status", "marker"), [("test", "这是一次测试，不是真实预警。"),
                                                ("exercise", "这是一次演练，不是真实预警。")])
def test_drill_is_marked_before_and_after_the_content_of_each_pass(status, marker):
    spoken = script(Notice(status=status), "zh", CONTEXT)
    first_pass = spoken.partition("再播报一遍")[0]
    assert first_pass.count(marker) == 2
    assert first_pass.index(marker) < first_pass.index("暴雨橙色预警")
    assert first_pass.rindex(marker) > first_pass.index("请远离河道")
    assert spoken.count(marker) == 4


def test_actual_alert_has_no_drill_marker():
    spoken = script(Notice(status="actual"), "zh", CONTEXT)
    assert "测试" not in spoken and "演练" not in spoken
    assert "not a real alert" not in script(Notice(status="actual"), "en", CONTEXT)


@pytest.mark.parametrize(("msg_type", "wording"), [("cancel", "这是更正"), ("update", "这是更新")])
def test_correction_and_update_are_announced_before_the_headline(msg_type, wording):
    spoken = script(Notice(msg_type=msg_type), "zh", CONTEXT)
    assert spoken.index(wording) < spoken.index("暴雨橙色预警")


def test_plain_alert_has_no_correction_wording():
    spoken = script(Notice(), "zh", CONTEXT)
    assert "更正" not in spoken and "更新" not in spoken


def test_english_correction_wording():
    assert "correction" in script(Notice(msg_type="cancel"), "en", CONTEXT)


def test_numbers_in_the_script_are_spelt_out():
    spoken = script(Notice(body="18:00起停水，咨询请拨打12345。"), "zh", CONTEXT)
    assert "十八点起停水" in spoken and "一二三四五" in spoken
    assert not any(character.isdigit() for character in spoken)


def test_call_and_broadcast_carry_the_audio_url_and_drill_flag():
    call = render_call(Notice(), "zh", CONTEXT)
    with_hash = replace(CONTEXT, audio_sha256="ab" * 32)
    broadcast = render_broadcast(Notice(status="exercise"), "zh", with_hash)
    assert (call.channel, call.data["audio_url"]) == ("voice", CONTEXT.audio_url)
    assert broadcast.channel == "loudspeaker"
    assert broadcast.data == {"audio_url": CONTEXT.audio_url, "audio_sha256": "ab" * 32,
                              "drill": True, "priority": 7}
    assert render_broadcast(Notice(), "zh", with_hash).data["drill"] is False


def test_call_prompts_ask_for_1_to_confirm_and_2_to_replay_in_the_notice_language():
    assert call_prompts("zh") == CallPrompts(question="确认收到请按1，重听请按2。",
                                             thanks="您已确认收到，谢谢。再见。", goodbye="再见。")
    assert call_prompts("en").question.startswith("Press 1 to confirm")
    # A language without phrases of its own: its macrolanguage's (Cantonese, Hakka: Chinese),
    # else English for one written in Latin letters, Chinese for any other.
    assert call_prompts("yue") == call_prompts("hak") == call_prompts("zh")
    assert call_prompts("es") == call_prompts("za") == call_prompts("en")
    assert call_prompts("bo") == call_prompts("zh")


def test_a_broadcast_without_a_checkable_audio_file_is_text_only():
    broadcast = render_broadcast(Notice(), "zh", CONTEXT)  # a URL but no hash
    assert "audio_url" not in broadcast.data and broadcast.text


@pytest.mark.parametrize(("written", "spoken"), [
    # phone numbers and codes, digit by digit; 1 is 幺 except in 123xx hotlines
    ("请拨打12345热线", "请拨打一二三四五热线"),
    ("报警请拨110", "报警请拨幺幺零"),
    ("火警119，急救120", "火警幺幺九，急救幺二零"),
    ("手机13812345678", "手机幺三八幺二三四五六七八"),
    ("电话0871-6543210", "电话零八七幺，六五四三二幺零"),
    # quantities, as numbers
    ("共3 人受伤", "共三人受伤"),
    ("7月15日", "七月十五日"),
    ("105户", "一百零五户"),
    ("12000元", "一万二千元"),
    ("1,200人", "一千二百人"),
    ("10000人", "一万人"),
    ("转移2人", "转移两人"),
    ("第2批", "第二批"),
    ("2号楼", "二号楼"),
    # years digit by digit, dates, clock times and ranges
    ("2026年", "二零二六年"),
    ("2026-07-15", "二零二六年七月十五日"),
    ("18:00", "十八点"),
    ("8:05", "八点零五分"),
    ("14：30", "十四点三十分"),
    ("18:00-20:00停水", "十八点至二十点停水"),
    # decimals, percentages, temperatures, units
    ("体温37.5度", "体温三十七点五度"),
    ("湿度达到95%", "湿度达到百分之九十五"),
    ("增长12.5％", "增长百分之十二点五"),
    ("最低气温-5℃", "最低气温零下五摄氏度"),
    ("气温10-15℃", "气温十至十五摄氏度"),
    ("降雨量50mm", "降雨量五十毫米"),
    ("１５日", "十五日"),
    ("没有数字。", "没有数字。"),
])
def test_speak_numbers_in_mandarin(written, spoken):
    assert speak_numbers(written, "zh") == spoken


def test_english_passes_through():
    text = "Call 12345 before 18:00; 3 people, 37.5%."
    assert speak_numbers(text, "en") == text


def test_the_short_call_script_says_headline_and_instruction_and_points_to_sms():
    long_body = "今晚有强降雨，" * 300
    short = render_call(Notice(body=long_body, status="exercise"), "zh", CONTEXT).data["say_text"]
    assert short.startswith("这里是清水县应急管理局")
    assert "暴雨橙色预警" in short and "请远离河道" in short and "今晚有强降雨" not in short
    assert short.count("这是一次演练") == 2  # the drill marker before and after, as in the script
    assert short.endswith("通知全文请看短信。")
    english = render_call(Notice(headline="Flood warning", body="Rain all night.",
                                 instruction="Keep away from rivers"), "en",
                          RenderContext(office_name="Qingshui Emergency Office"))
    assert english.data["say_text"] == ("This is Qingshui Emergency Office with a public "
                                        "announcement. Flood warning. What to do: Keep away from "
                                        "rivers. The full notice is in a text message.")
