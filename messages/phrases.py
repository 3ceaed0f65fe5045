"""Fixed wording that goes out with every announcement, per language.

The drill markers matter most: a drill must never read like a real alert
(the 2018 Hawaii false alarm), so every rendering of a ``test`` or
``exercise`` announcement carries one.
"""
from __future__ import annotations

from messages.languages import macrolanguage, script

PHRASES = {
    "zh": {
        "drill.test": "【测试】",
        "drill.exercise": "【演练】",
        "drill.spoken.test": "这是一次测试，不是真实预警。",
        "drill.spoken.exercise": "这是一次演练，不是真实预警。",
        "cancel": "【更正】",
        "update": "【更新】",
        "details": "详情",
        "instruction": "请",
        "repeat": "再播报一遍。",
        "full_text": "全文",
        "call.prompt": "确认收到请按1，重听请按2。",
        "call.thanks": "您已确认收到，谢谢。再见。",
        "call.goodbye": "再见。",
        "label.office": "发布单位",
        "label.severity": "预警级别",
        "label.time": "发布时间",
        "spoken.opening": "这里是{office}，现在播报通知。",
        "spoken.cancel": "这是更正：此前发布的通知已撤销。",
        "spoken.update": "这是更新：此前发布的通知有变化。",
        "spoken.instruction": "请注意：",
        "spoken.see_sms": "通知全文请看短信。",
        "withdrawal": "此前发布的通知已撤销：“{headline}”（{time}发布），请不要理会。",
        "withdrawal.time": "{moment.year}年{moment.month}月{moment.day}日{moment:%H:%M}",
        "correction.headline": "【更正】",
    },
    "en": {
        "drill.test": "[TEST] ",
        "drill.exercise": "[EXERCISE] ",
        "drill.spoken.test": "This is a test, not a real alert.",
        "drill.spoken.exercise": "This is an exercise, not a real alert.",
        "cancel": "[CORRECTION] ",
        "update": "[UPDATE] ",
        "details": "Details",
        "instruction": "",
        "repeat": "Once again.",
        "full_text": "Full text",
        "call.prompt": "Press 1 to confirm you received this notice. Press 2 to hear it again.",
        "call.thanks": "Thank you, your confirmation is recorded. Goodbye.",
        "call.goodbye": "Goodbye.",
        "label.office": "Issued by",
        "label.severity": "Warning level",
        "label.time": "Issued at",
        "spoken.opening": "This is {office} with a public announcement.",
        "spoken.cancel": "This is a correction: the earlier announcement is withdrawn.",
        "spoken.update": "This is an update to an earlier announcement.",
        "spoken.instruction": "What to do: ",
        "spoken.see_sms": "The full notice is in a text message.",
        "withdrawal": "Withdrawn: the notice “{headline}” issued at {time}. Please disregard it.",
        "withdrawal.time": "{moment:%Y-%m-%d %H:%M} ({offset})",
        "correction.headline": "[Correction] ",
    },
}


def wording_language(language: str) -> str:
    """Whose fixed words go with a text in ``language`` (any canonical tag): its own when
    ``PHRASES`` has them, else its macrolanguage's (a Cantonese or Hakka text gets Chinese
    markers), else English for a text in Latin letters (``es``, ``za``) and Chinese for any
    other. The text itself is always the announcement's own words."""
    if language in PHRASES:
        return language
    if macrolanguage(language) in PHRASES:
        return macrolanguage(language)
    return "en" if script(language) == "Latn" else "zh"


def phrase(language: str, key: str) -> str:
    return PHRASES[wording_language(language)][key]


def marker(language: str, status: str, msg_type: str) -> str:
    """The prefix that says what kind of message this is: drill, correction, update."""
    prefix = ""
    if status in ("test", "exercise"):
        prefix += phrase(language, f"drill.{status}")
    if msg_type in ("cancel", "update"):
        prefix += phrase(language, msg_type)
    return prefix
