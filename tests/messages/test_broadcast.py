"""The TV crawl line, the radio script and the webhook body."""
from datetime import datetime, timezone
from types import SimpleNamespace

from messages import broadcast
from messages.gbt35965 import Codes, WarningDocument
from messages.render_types import RenderContext, Rendered


def notice(**changes):
    return SimpleNamespace(**{"id": 5, "headline": "暴雨预警", "body": "今夜到明天有大暴雨，" * 10,
                              "instruction": "请远离河道。", "status": "actual", "msg_type": "alert",
                              "severity": "extreme", "language": "zh", **changes})


def test_the_crawl_is_one_line_within_its_length_with_the_colour_word():
    line = broadcast.crawl(notice(body="第一行\n第二行" * 20), "zh", 60)
    assert len(line) == 60 and "\n" not in line and line.endswith("…")
    assert line.startswith("【红色预警】暴雨预警：第一行 第二行")


def test_a_short_notice_is_not_cut_and_a_drill_says_so():
    line = broadcast.crawl(notice(body="有雨。", instruction="", status="exercise",
                                  severity="moderate"), "zh", 60)
    assert line == "【演练】【黄色预警】暴雨预警：有雨。"


def test_a_length_shorter_than_the_head_keeps_the_limit():
    assert len(broadcast.crawl(notice(), "zh", 8)) == 8


def test_the_radio_script_is_the_spoken_script():
    script = broadcast.radio_script(notice(body="有雨。"), "zh", RenderContext(office_name="县政府"))
    assert script.startswith("这里是县政府") and script.count("暴雨预警") == 2


def test_the_webhook_body_carries_the_notice_its_renderings_and_cap_url():
    sent = datetime(2026, 7, 1, 2, 0, tzinfo=timezone.utc)
    document = WarningDocument(5, sent, "actual", "alert", "县政府", "暴雨", "immediate", "extreme",
                               "likely", "暴雨预警", "有雨。", "zh", [("450702", "钦南区")])
    shown = broadcast.render_broadcast(notice(body="有雨。"), document, Codes(), RenderContext())
    hook = broadcast.render_webhook(notice(body="有雨。"), shown, document,
                                    cap_url="https://x/cap/5.xml", sms=Rendered("sms", "zh", "短信"))
    body = hook.data["body"]
    assert body["cap_url"] == "https://x/cap/5.xml" and body["notice"]["colour"] == "Red"
    assert body["renderings"]["gbt35965"].startswith("<?xml")
    assert body["renderings"]["crawl"] == shown.data["crawl"] and body["renderings"]["sms"] == "短信"
    assert body["notice"]["identifier"] == "45070000000000_20260701100000_5"
