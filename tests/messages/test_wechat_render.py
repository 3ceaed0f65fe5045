from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from messages.render import RenderContext
from messages.wechat import MARKDOWN_LIMIT_BYTES, render, render_group_markdown

CONTEXT = RenderContext(office_name="青山县人民政府信息办", public_base_url="https://tb.example.cn")
SENT = datetime(2024, 7, 1, 7, 5, tzinfo=timezone.utc)  # 15:05 in China


@dataclass
class Announcement:
    id: int = 42
    headline: str = "暴雨红色预警"
    body: str = "预计今夜有特大暴雨。"
    instruction: str = "请远离河道。"
    status: str = "actual"
    msg_type: str = "alert"
    severity: str = "severe"
    language: str = "zh"
    sent: datetime | None = SENT


def values(rendered):
    return {key: field["value"] for key, field in rendered.data["template"].items()}


def test_fields_carry_title_time_office_summary_and_instruction():
    rendered = render(Announcement(), "zh", CONTEXT)

    assert values(rendered) == {
        "thing1": "暴雨红色预警",
        "time2": "2024年7月1日 15:05",
        "thing3": "青山县人民政府信息办",
        "thing4": "预计今夜有特大暴雨。",
        "thing5": "请远离河道。",
    }
    assert rendered.data["url"] == "https://tb.example.cn/a/42"
    assert rendered.channel == "wechat"
    assert rendered.text.endswith("https://tb.example.cn/a/42")


def test_the_time_is_the_offices_time_zone():
    """OFFICE_TIMEZONE reaches the card and the group post through the render context."""
    urumqi = RenderContext(office_name="青山县人民政府信息办", time_zone="Asia/Urumqi")
    assert values(render(Announcement(), "zh", urumqi))["time2"] == "2024年7月1日 13:05"
    assert values(render(Announcement(), "en", RenderContext(time_zone="Europe/London")))[
        "time2"] == "2024-07-01 08:05"  # British Summer Time
    assert "2024年7月1日 13:05" in render_group_markdown(Announcement(), "zh", urumqi)


def test_naive_sent_time_is_taken_as_utc():
    rendered = render(Announcement(sent=datetime(2024, 12, 31, 16, 30)), "zh", CONTEXT)

    assert values(rendered)["time2"] == "2025年1月1日 00:30"


def test_no_instruction_leaves_its_field_out():
    assert "thing5" not in values(render(Announcement(instruction=""), "zh", CONTEXT))


def test_long_values_are_cut_to_twenty_characters_with_an_ellipsis():
    announcement = Announcement(headline="县" * 30, body="雨" * 4000, instruction="请" * 1000)

    fields = values(render(announcement, "zh", CONTEXT))

    for key in ("thing1", "thing4", "thing5"):
        assert len(fields[key]) == 20
        assert fields[key].endswith("…")
    assert fields["thing4"] == "雨" * 19 + "…"


@pytest.mark.parametrize("emoji", ["👨\u200d👩\u200d👧\u200d👦", "🇨🇳", "1\ufe0f\u20e3", "👍🏽"])
def test_a_cut_keeps_a_multi_code_point_emoji_whole_or_leaves_it_out(emoji):
    body = "雨" * 18 + emoji + "雨" * 10  # a cut after 19 code points falls inside the emoji

    value = values(render(Announcement(body=body), "zh", CONTEXT))["thing4"]

    assert value == "雨" * 18 + "…"
    fits = values(render(Announcement(body="雨" * (19 - len(emoji)) + emoji + "雨" * 5), "zh",
                         CONTEXT))["thing4"]
    assert fits == "雨" * (19 - len(emoji)) + emoji + "…"


def test_a_value_of_exactly_twenty_characters_is_kept_whole():
    assert values(render(Announcement(body="雨" * 20), "zh", CONTEXT))["thing4"] == "雨" * 20


def test_line_breaks_are_flattened_because_wechat_drops_what_follows_them():
    fields = values(render(Announcement(instruction="请远离河道，\n  转移到高处。"), "zh", CONTEXT))

    assert fields["thing5"] == "请远离河道， 转移到高处。"


@pytest.mark.parametrize("status, msg_type, prefix", [
    ("exercise", "alert", "【演练】【橙色预警】"),
    ("test", "alert", "【测试】【橙色预警】"),
    ("exercise", "cancel", "【演练】【更正】"),  # a withdrawal carries no warning colour
    ("actual", "update", "【更新】【橙色预警】"),
])
def test_title_keeps_its_marker_whole_when_the_headline_is_cut(status, msg_type, prefix):
    announcement = Announcement(headline="县" * 30, status=status, msg_type=msg_type)

    title = values(render(announcement, "zh", CONTEXT))["thing1"]

    assert title.startswith(prefix)
    assert title == prefix + "县" * (19 - len(prefix)) + "…"


def test_a_real_alert_carries_no_marker():
    title = values(render(Announcement(), "zh", CONTEXT))["thing1"]

    assert "【" not in title


def test_an_english_marker_longer_than_the_field_is_itself_cut_to_the_limit():
    announcement = Announcement(headline="Flood", status="exercise", msg_type="cancel",
                                language="en")

    title = values(render(announcement, "en", CONTEXT))["thing1"]

    assert len(title) == 20
    assert title.startswith("[EXERCISE]")


def test_group_markdown_has_marker_office_time_instruction_and_link():
    markdown = render_group_markdown(Announcement(status="exercise"), "zh", CONTEXT)

    assert markdown.startswith("### 【演练】暴雨红色预警\n")
    assert "> 发布单位：青山县人民政府信息办\n" in markdown
    assert "> 发布时间：2024年7月1日 15:05\n" in markdown
    assert "预计今夜有特大暴雨。" in markdown
    assert "**请远离河道。**" in markdown
    assert markdown.endswith("[详情](https://tb.example.cn/a/42)")


def test_group_markdown_in_english_uses_english_labels():
    markdown = render_group_markdown(Announcement(headline="Flood warning"), "en", CONTEXT)

    assert "> Issued by: " in markdown
    assert markdown.endswith("[Details](https://tb.example.cn/a/42)")


@pytest.mark.parametrize("character", ["雨", "😀", "a"])  # 3, 4 and 1 bytes in UTF-8
def test_long_group_markdown_fits_4096_bytes_and_keeps_its_link(character):
    announcement = Announcement(body=character * 4000, instruction="请" * 1000)

    markdown = render_group_markdown(announcement, "zh", CONTEXT)

    size = len(markdown.encode("utf-8"))
    assert MARKDOWN_LIMIT_BYTES - 4 <= size <= MARKDOWN_LIMIT_BYTES
    assert character * 10 + "…" in markdown  # cut between whole characters
    assert "\ufffd" not in markdown
    assert markdown.endswith("[详情](https://tb.example.cn/a/42)")


def test_short_group_markdown_is_not_cut():
    markdown = render_group_markdown(Announcement(), "zh", CONTEXT)

    assert "…" not in markdown


def test_an_english_card_carries_the_english_office_name_and_no_chinese_date():
    context = RenderContext(office_name="青山县人民政府信息办", office_name_en="Qingshan Gov Office",
                            public_base_url="https://tb.example.cn")
    english = Announcement(headline="Rainstorm", body="Heavy rain tonight.",
                           instruction="Keep away from rivers.", language="en")

    card = values(render(english, "en", context))
    markdown = render_group_markdown(english, "en", context)

    assert card["time2"] == "2024-07-01 15:05"
    assert card["thing3"] == "Qingshan Gov Office"
    assert "2024-07-01 15:05" in markdown and "Qingshan Gov Office" in markdown
    assert not any("\u4e00" <= char <= "\u9fff" for char in render(english, "en", context).text)
    # The Chinese card keeps the Chinese name and date.
    assert values(render(Announcement(), "zh", context))["thing3"] == "青山县人民政府信息办"


def test_a_text_in_a_language_without_phrases_keeps_its_words_with_known_markers():
    """#19, item 4: a Spanish text gets the English markers, a Cantonese one the Chinese."""
    spanish = Announcement(headline="Lluvias", body="Mucha lluvia.", status="exercise",
                           language="es")
    post = render_group_markdown(spanish, "es", CONTEXT)
    assert post.startswith("### [EXERCISE] ") and "Lluvias" in post and "Mucha lluvia." in post
    assert "[Details](https://tb.example.cn/a/" in post
    cantonese = Announcement(headline="落大雨", body="今晚會落好大雨。", status="exercise",
                             language="yue")
    assert values(render(cantonese, "yue", CONTEXT))["thing1"].startswith("【演练】")
