"""The Weibo post: within the limit, the link always whole at the end, no topic marks."""
from types import SimpleNamespace

from messages import weibo
from messages.render_types import RenderContext

CONTEXT = RenderContext(public_base_url="https://tb.example.gov.cn")


def notice(**changes):
    return SimpleNamespace(**{"id": 12, "headline": "暴雨预警", "body": "今夜有大暴雨。", "instruction": "",
                              "status": "actual", "msg_type": "alert", "severity": "severe",
                              "language": "zh", **changes})


def test_a_short_notice_is_whole_with_its_link():
    post = weibo.render(notice(), "zh", CONTEXT).text
    assert post == "【橙色预警】暴雨预警 今夜有大暴雨。 详情: https://tb.example.gov.cn/a/12"


def test_a_long_notice_is_cut_to_the_limit_keeping_the_link():
    post = weibo.render(notice(body="河水上涨，" * 100), "zh", CONTEXT).text
    assert len(post) == 140 and post.endswith("… 详情: https://tb.example.gov.cn/a/12")
    assert post.startswith("【橙色预警】暴雨预警 河水上涨")


def test_a_headline_longer_than_the_limit_still_ends_with_the_link():
    post = weibo.render(notice(headline="很长的标题" * 40), "zh", CONTEXT, limit=60).text
    assert len(post) <= 60 and post.endswith("https://tb.example.gov.cn/a/12")


def test_topic_marks_and_line_breaks_are_neutralised():
    post = weibo.render(notice(body="#暴雨#\n注意", msg_type="cancel"), "zh", CONTEXT).text
    assert "#" not in post and "\n" not in post and post.startswith("【更正】暴雨预警 ＃暴雨＃ 注意")
