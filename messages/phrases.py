"""Fixed wording that goes out with every announcement, per language.

The drill markers matter most: a drill must never read like a real alert
(the 2018 Hawaii false alarm), so every rendering of a ``test`` or
``exercise`` announcement carries one.
"""
from __future__ import annotations

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
    },
}


def phrase(language: str, key: str) -> str:
    return PHRASES.get(language, PHRASES["zh"])[key]


def marker(language: str, status: str, msg_type: str) -> str:
    """The prefix that says what kind of message this is: drill, correction, update."""
    prefix = ""
    if status in ("test", "exercise"):
        prefix += phrase(language, f"drill.{status}")
    if msg_type in ("cancel", "update"):
        prefix += phrase(language, msg_type)
    return prefix
