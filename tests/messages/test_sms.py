from dataclasses import dataclass
from decimal import Decimal

import pytest

from messages import sms
from messages.render import RenderContext

URL = "http://gov.example/a/7"
CONTEXT = RenderContext(sms_signature="县人民政府", public_base_url="http://gov.example")


@dataclass
class Announcement:
    headline: str = "暴雨红色预警"
    body: str = "今天夜间有特大暴雨。"
    instruction: str = "请转移到安全地点。"
    status: str = "actual"
    msg_type: str = "alert"
    severity: str = "severe"
    language: str = "zh"
    id: int = 7


@pytest.mark.parametrize("text, expected", [
    ("Hello, world!", "GSM-7"),
    ("Café à 5€ {x} [y] ~^|\\", "GSM-7"),   # é, à, € and the extension table are GSM-7
    ("ça", "UCS-2"),                         # GSM-7 has Ç but not ç
    ("Hello 世界", "UCS-2"),
    ("【County】", "UCS-2"),                  # the signature brackets alone force UCS-2
    ("ok 😀", "UCS-2"),
])
def test_encoding(text, expected):
    assert sms.encoding(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("", 0),
    ("a" * 160, 1),
    ("a" * 161, 2),
    ("a" * 306, 2),                          # 153 × 2
    ("a" * 307, 3),
    ("€" * 80, 1),                           # extension characters count 2: 160 units
    ("{" * 81, 2),
    ("a" * 159 + "€", 2),                    # 161 units
    ("a" * 152 + "€" + "a" * 152, 3),        # 306 units, but € cannot straddle two parts
    ("中" * 70, 1),
    ("中" * 71, 2),
    ("中" * 134, 2),                         # 67 × 2
    ("中" * 135, 3),
    ("😀" * 35, 1),                          # 70 UTF-16 units
    ("😀" * 36, 2),
    ("中" * 69 + "😀", 2),                    # 71 units
    ("中" * 66 + "😀" + "中" * 66, 3),        # 134 units, but the emoji is never split
    ("a" * 70 + "中", 2),                     # one Chinese character makes it all UCS-2
    ("Flood warning 洪水预警 " * 3, 1),
])
def test_segments(text, expected):
    assert sms.segments(text) == expected


def test_cost_is_per_segment():
    assert sms.cost(3, Decimal("0.05")) == Decimal("0.15")


def test_sentences_cut_after_stops_but_not_inside_numbers_or_links():
    assert sms.sentences("第一句。第二句！“第三句？”末尾") == ["第一句。", "第二句！", "“第三句？”", "末尾"]
    assert sms.sentences("Water rose 3.5 m. See www.gov.cn now! Go.") == [
        "Water rose 3.5 m. ", "See www.gov.cn now! ", "Go."]


def test_render_puts_signature_marker_headline_body_instruction_and_link_in_order():
    rendered = sms.render(Announcement(), "zh", CONTEXT)

    assert rendered.text == f"【县人民政府】暴雨红色预警 今天夜间有特大暴雨。 请转移到安全地点。 详情: {URL}"
    assert rendered.data == {"encoding": "UCS-2", "segments": 1, "characters": len(rendered.text),
                             "shortened": False, "max_segments": 4}


@pytest.mark.parametrize("status, msg_type, prefix", [
    ("exercise", "alert", "【县人民政府】【演练】暴雨"),
    ("test", "alert", "【县人民政府】【测试】暴雨"),
    ("actual", "cancel", "【县人民政府】【更正】暴雨"),
])
def test_render_marks_drills_and_corrections_right_after_the_signature(status, msg_type, prefix):
    text = sms.render(Announcement(status=status, msg_type=msg_type), "zh", CONTEXT).text
    assert text.startswith(prefix)


def test_english_without_signature_stays_gsm7():
    announcement = Announcement(headline="Flood warning", body="The river is rising.",
                                instruction="Move to high ground.", language="en")
    rendered = sms.render(announcement, "en", RenderContext(sms_signature="",
                                                            public_base_url="http://gov.example"))
    assert rendered.text == f"Flood warning The river is rising. Move to high ground. Details: {URL}"
    assert rendered.data["encoding"] == "GSM-7"
    assert rendered.data["segments"] == 1


LONG_BODY = "".join(f"第{n}段水位持续上涨，请注意安全😀。" for n in range(1, 40))


def test_long_text_is_cut_at_a_sentence_boundary_within_the_budget():
    announcement = Announcement(body=LONG_BODY)
    rendered = sms.render(announcement, "zh", CONTEXT)
    text = rendered.text

    head = "【县人民政府】暴雨红色预警 "
    tail = f" 请转移到安全地点。 全文: {URL}"
    assert text.startswith(head) and text.endswith(tail)
    kept_body = text[len(head):-len(tail)]
    assert kept_body and LONG_BODY.startswith(kept_body) and kept_body.endswith("😀。")
    assert rendered.data["shortened"] is True
    assert rendered.data["segments"] == sms.segments(text) <= sms.DEFAULT_MAX_SEGMENTS
    # one more sentence would not have fitted
    next_sentence = sms.sentences(LONG_BODY)[len(sms.sentences(kept_body))]
    assert sms.segments(head + kept_body + next_sentence + tail) > sms.DEFAULT_MAX_SEGMENTS
    text.encode("utf-8")  # no half of a surrogate pair anywhere


def test_budget_is_a_parameter():
    rendered = sms.render(Announcement(body=LONG_BODY), "zh", CONTEXT, max_segments=2)
    assert rendered.data["segments"] <= 2
    assert rendered.text.endswith(f"全文: {URL}")


def test_instruction_is_shortened_only_once_the_body_is_gone():
    instruction = "".join(f"第{n}条：立即撤离到高处。" for n in range(1, 30))
    text = sms.fit("【县】预警", ["正文第一句。正文第二句。", instruction], "全文: x", max_segments=2)

    assert "正文" not in text
    assert text.startswith("【县】预警 第1条：立即撤离到高处。") and text.endswith("。 全文: x")
    assert sms.segments(text) <= 2


def test_head_and_tail_are_kept_even_over_budget():
    text = sms.fit("头" * 80, ["正文。"], "全文: x", max_segments=1)
    assert text == "头" * 80 + " 全文: x"
