"""Severity as China's warning system says it: four colours and four levels.

CAP's severities map onto the national convention (《国家突发公共事件总体应急预案》):
extreme is 特别严重, red, level I; severe 严重, orange, II; moderate 较重, yellow, III;
minor 一般, blue, IV. The console, the public page, SMS and WeChat all take their words
from this one table.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from messages.phrases import wording_language


class Level(NamedTuple):
    grade: str   # the level's own word: 特别严重 …
    colour: str  # 红色 … / Red …
    level: str   # I级 … / Level I …
    css: str     # the colour as a class name


LEVELS = {
    "zh": {
        "extreme": Level("特别严重", "红色", "I级", "red"),
        "severe": Level("严重", "橙色", "II级", "orange"),
        "moderate": Level("较重", "黄色", "III级", "yellow"),
        "minor": Level("一般", "蓝色", "IV级", "blue"),
    },
    "en": {
        "extreme": Level("Extreme", "Red", "Level I", "red"),
        "severe": Level("Severe", "Orange", "Level II", "orange"),
        "moderate": Level("Moderate", "Yellow", "Level III", "yellow"),
        "minor": Level("Minor", "Blue", "Level IV", "blue"),
    },
}


def level(severity: str, language: str) -> Level | None:
    return LEVELS[wording_language(language)].get(severity)


def label(severity: str, language: str) -> str:
    """The full name: "特别严重/红色·I级", "Red · Level I (extreme)"; an unknown one as given."""
    found = level(severity, language)
    if found is None:
        return severity
    if wording_language(language) == "en":
        return f"{found.colour} · {found.level} ({found.grade.lower()})"
    return f"{found.grade}/{found.colour}·{found.level}"


def warning(severity: str, language: str) -> str:
    """The short name that opens a message: "红色预警", "Red warning"."""
    found = level(severity, language)
    if found is None:
        return ""
    return f"{found.colour} warning" if wording_language(language) == "en" else f"{found.colour}预警"


def names_a_warning(headline: str, language: str) -> bool:
    """Whether a headline already says a warning's colour: "暴雨红色预警", "Red rainstorm warning"."""
    levels = LEVELS[wording_language(language)].values()
    if wording_language(language) == "en":
        words = set(re.findall(r"[a-z]+", headline.lower()))
        return "warning" in words and any(found.colour.lower() in words for found in levels)
    return any(f"{found.colour}预警" in headline for found in levels)


def tag(announcement, language: str) -> str:
    """The warning in brackets before a message's headline ("【红色预警】", "[Red warning] "),
    or nothing when the headline already names a warning colour ("暴雨红色预警": the office's
    own words stand) or the message withdraws one (a withdrawal must not read like a new
    warning)."""
    words = warning(announcement.severity, language)
    if not words or names_a_warning(announcement.headline, language) or \
            announcement.msg_type == "cancel":
        return ""
    return f"[{words}] " if wording_language(language) == "en" else f"【{words}】"
