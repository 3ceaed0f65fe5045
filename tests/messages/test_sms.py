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
    assert rendered.text == (f"[Orange warning] Flood warning The river is rising. "
                             f"Move to high ground. Details: {URL}")
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


# Units by hand (UCS-2: a BMP code point is 1, a surrogate pair 2; 70 alone, 67 per part):
FAMILY = "👨‍👩‍👧‍👦"        # 4 people (2 each) + 3 ZWJ (1 each) = 11
FLAG = "🇨🇳"               # 2 regional indicators = 4
KEYCAP = "1️⃣"              # "1" + U+FE0F + U+20E3 = 3
THUMB = "👍🏽"              # thumb + skin tone = 4
FIREFIGHTER = "👩🏽‍🚒"      # woman + skin tone + ZWJ + fire engine = 2 + 2 + 1 + 2 = 7
FIRE_HEART = "❤️‍🔥"        # U+2764 + U+FE0F + ZWJ + fire = 1 + 1 + 1 + 2 = 5
ENGLAND = "🏴󠁧󠁢󠁥󠁮󠁧󠁿"           # black flag + 6 tag characters = 2 + 12 = 14


@pytest.mark.parametrize("text, expected", [
    (FAMILY * 6, 1),                         # 66 units
    (FAMILY * 7, 2),                         # 77 > 70; 6 families (66) per part
    (FAMILY * 13, 3),                        # 6 + 6 + 1
    (FIRE_HEART * 14, 1),                    # 70
    (FIRE_HEART * 15, 2),                    # 75
    (FLAG * 17 + "中" * 2, 1),               # 68 + 2 = 70
    (FLAG * 18, 2),                          # 72
    # 64 + 4 + 65 = 133 <= 134, but the flag fits neither part 1 (64 + 4 > 67) nor split:
    # part 2 = flag + 63, part 3 = 2. Split code point by code point it looked like 2.
    ("中" * 64 + FLAG + "中" * 65, 3),
    ("中" * 66 + KEYCAP + "中" * 65, 3),     # 66 | 3 + 64 | 1
    ("中" * 65 + THUMB + "中" * 64, 3),      # 65 | 4 + 63 | 1
    ("中" * 62 + FIREFIGHTER + "中" * 65, 3),  # 62 | 7 + 60 | 5
    ("中" * 60 + FIREFIGHTER + "中" * 67, 2),  # 60 + 7 = 67 | 67
    ("中" * 60 + ENGLAND + "中" * 60, 3),    # 60 | 14 + 53 | 7
    ("Call " + KEYCAP + " now", 1),          # U+FE0F and U+20E3 are not GSM-7: UCS-2, 11 units
    ("a" * 159 + "😀", 3),                   # UCS-2: 161 units, 67 | 67 | 27
])
def test_multi_code_point_emoji_are_never_split_across_parts(text, expected):
    assert sms.encoding(text) == "UCS-2"
    assert sms.segments(text) == expected


def test_a_multi_code_point_emoji_is_kept_whole_when_the_text_is_cut():
    body = "".join(f"第{n}段水位上涨{FAMILY}{FLAG}，请注意{KEYCAP}。" for n in range(1, 40))
    text = sms.render(Announcement(body=body), "zh", CONTEXT, max_segments=3).text
    # every emoji kept is whole: no lone ZWJ, regional indicator or keycap mark at a cut
    assert text.count(FAMILY) * 3 == text.count("\u200d")
    assert text.count(FLAG) * 2 == sum(0x1F1E6 <= ord(c) <= 0x1F1FF for c in text)
    assert text.count(KEYCAP) == text.count("\u20e3")


ENGLISH = Announcement(headline="Flood warning",
                       body="The Qin River passes the warning level at 8 p.m. tonight.",
                       instruction="Move to the school on high ground now.", language="en")


def test_english_opens_with_the_latin_signature_and_stays_gsm7():
    latin = RenderContext(sms_signature="钦州发布", sms_signature_latin="Qinzhou Gov",
                          public_base_url="http://gov.example")
    rendered = sms.render(ENGLISH, "en", latin)

    assert rendered.text.startswith("[Qinzhou Gov] [Orange warning] Flood warning The Qin River")
    assert (rendered.data["encoding"], rendered.data["segments"]) == ("GSM-7", 2)
    # The same notice under the Chinese signature alone: all UCS-2, three parts.
    chinese = sms.render(ENGLISH, "en", RenderContext(sms_signature="钦州发布",
                                                      public_base_url="http://gov.example"))
    assert chinese.text.startswith("【钦州发布】[Orange warning] Flood warning")
    assert (chinese.data["encoding"], chinese.data["segments"]) == ("UCS-2", 3)
    # Chinese notices keep the 【】 signature.
    assert sms.render(Announcement(), "zh", latin).text.startswith("【钦州发布】暴雨红色预警")


@pytest.mark.parametrize("text, expected", [
    ("Call Dr. Li at the clinic. Go now.", ["Call Dr. Li at the clinic. ", "Go now."]),
    ("Shelter No. 3 is open. Go now.", ["Shelter No. 3 is open. ", "Go now."]),
    ("Bring water, e.g. two bottles. Go now.", ["Bring water, e.g. two bottles. ", "Go now."]),
    ("Bring papers, i.e. your ID. Go now.", ["Bring papers, i.e. your ID. ", "Go now."]),
    ("Rain until 8 p.m. tonight. Go now.", ["Rain until 8 p.m. tonight. ", "Go now."]),
    ("Rain until 8 p.m. Stay in.", ["Rain until 8 p.m. ", "Stay in."]),
    ("The U.S. and Canada help. Go now.", ["The U.S. and Canada help. ", "Go now."]),
    ("Help came from the U.S. Go now.", ["Help came from the U.S. ", "Go now."]),
    ("Mr. and Mrs. Wu are safe. Go now.", ["Mr. and Mrs. Wu are safe. ", "Go now."]),
    ("Water rose 3.5 m. Go now.", ["Water rose 3.5 m. ", "Go now."]),
])
def test_english_sentences_do_not_end_at_abbreviations(text, expected):
    assert sms.sentences(text) == expected


def test_sentences_do_not_end_inside_a_quotation():
    assert sms.sentences("他说：“请大家注意。明天停课。”后续安排。") == \
        ["他说：“请大家注意。明天停课。”", "后续安排。"]
    assert sms.sentences("「一。二。」三。") == ["「一。二。」", "三。"]
    assert sms.sentences('He said "Go. Now." Then left. It is the residents\' school. Go.') == \
        ['He said "Go. Now." ', "Then left. ", "It is the residents' school. ", "Go."]
    assert sms.sentences("Don't wait. 'Leave. Now.' Go.") == \
        ["Don't wait. ", "'Leave. Now.' ", "Go."]


QUOTE_PAIRS = [("“", "”"), ("「", "」"), ("『", "』"), ("‘", "’")]


def balanced(text: str) -> bool:
    depth = []
    for char in text:
        for opening, closing in QUOTE_PAIRS:
            if char == opening:
                depth.append(closing)
            elif char == closing:
                if not depth or depth.pop() != closing:
                    return False
    return not depth and text.count('"') % 2 == 0


@pytest.mark.parametrize("opening, closing", QUOTE_PAIRS)
def test_a_cut_never_leaves_a_quotation_open(opening, closing):
    quoted = "".join(f"第{n}条通知内容较长。" for n in range(1, 30))
    body = f"县长说：{opening}{quoted}{closing}请大家转告。"
    for budget in (1, 2, 3):
        text = sms.fit("【县】预警", [body, "请转移。"], "全文: x", max_segments=budget)
        assert balanced(text), text


def test_a_cut_inside_an_ascii_quotation_closes_it():
    quoted = " ".join(f"Sentence {n} of the order, read it well." for n in range(1, 30))
    text = sms.fit("[County] Warning", [f'The mayor said: "{quoted}" Pass it on.'], "Full text: x",
                   max_segments=2)
    assert balanced(text) and "The mayor said" in text
    assert sms.segments(text) <= 2


def test_a_body_with_no_sentence_end_is_cut_at_a_clause_boundary():
    body = "，".join(f"第{n}村请立即转移到安全地带" for n in range(1, 40))  # no 。 anywhere
    text = sms.fit("【县】预警", [body, "请转移。"], "全文: x", max_segments=2)

    kept = text[len("【县】预警 "):-len(" 请转移。 全文: x")]
    assert kept.endswith("…") and body.startswith(kept[:-1])
    assert kept[:-1].endswith("转移到安全地带")  # a whole clause, its comma replaced
    assert sms.segments(text) <= 2
    # one more clause would not have fitted
    longer = body[:body.index("，", len(kept)) ] + "…"
    assert sms.segments(text.replace(kept, longer)) > 2


def test_an_english_clause_cut_stays_gsm7():
    body = ", ".join(f"village {n} must move to high ground" for n in range(1, 30))
    rendered = sms.render(Announcement(headline="Flood", body=body, instruction="Go now.",
                                       language="en"), "en",
                          RenderContext(sms_signature="", public_base_url="http://gov.example"),
                          max_segments=2)
    assert rendered.data["encoding"] == "GSM-7" and rendered.data["segments"] <= 2
    assert "high ground... Go now." in rendered.text


def test_a_cut_inside_single_quotes_closes_them_and_keeps_apostrophes_as_they_are():
    body = "The mayor's order: '" + ", ".join(f"village {n} must move" for n in range(1, 60)) + "'"
    text = sms.fit("[County] Warning", [body], "Full text: x", max_segments=1)

    kept = text[len("[County] Warning "):-len(" Full text: x")]
    assert kept.startswith("The mayor's order: 'village 1 must move, village 2")
    assert kept.endswith("must move...'")  # the quotation closed after the ellipsis
    assert sms.encoding(text) == "GSM-7" and sms.segments(text) == 1


def test_a_text_in_a_language_without_phrases_of_its_own_keeps_its_words_with_known_markers():
    """Texts per language (#19, item 4): a Spanish text gets the English markers and the Latin
    signature, a written-Cantonese one the Chinese markers; the words are the text's own."""
    latin = RenderContext(sms_signature="钦州发布", sms_signature_latin="Qinzhou Gov",
                          public_base_url="http://gov.example")
    spanish = Announcement(headline="Lluvias fuertes", body="Esta noche llueve mucho.",
                           instruction="Quédese en casa.", status="exercise", language="es")
    text = sms.render(spanish, "es", latin).text
    assert text.startswith("[Qinzhou Gov] [EXERCISE] [Orange warning] Lluvias fuertes")
    assert "Quédese en casa." in text and "Details: http://gov.example/a/7" in text
    cantonese = Announcement(headline="落大雨", body="今晚會落好大雨。", status="exercise",
                             language="yue")
    text = sms.render(cantonese, "yue", latin).text
    assert text.startswith("【钦州发布】【演练】【橙色预警】落大雨") and "详情" in text
