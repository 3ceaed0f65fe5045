"""What the notice hotline says around the notices themselves, in Chinese or English.

A caller hears these through the provider's own speech (``<Say>``), so they stay short
and name every key they offer. The notices are the recordings the calls and
loudspeakers already use (``messages.speech.script``); these are only the menu, the
counts, the choices after each notice and the goodbyes.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from messages.phrases import wording_language
from messages.render_types import RenderContext
from messages.withdrawal import said_time

PROMPTS = {
    "zh": {
        "welcome": "这里是{office}通知热线。",
        "menu.whole": "收听{area}全境的通知，请按{key}。",
        "menu.area": "{area}，请按{key}。",
        "menu.top": "请选择您所在的地区。",
        "menu.hash": "输入号码后请按井号键。",
        "duty": "转接值班人员，请按0。",
        "count": "{area}现有{count}条生效的通知。",
        "position": "第{number}条，共{count}条。",
        "choices.confirm": "确认收到请按1，",
        "choices": "重听请按2，下一条请按3。",
        "confirmed": "您已确认收到，谢谢。",
        "last": "这是最后一条通知。",
        "none": "{area}现在没有生效的通知。",
        "none.last": "最近一条通知发布于{time}。",
        "none.ever": "{area}还没有发布过通知。",
        "invalid": "您按的键无效。",
        "connecting": "正在为您转接值班人员，请稍候。",
        "goodbye": "感谢来电，再见。",
        "your_area": "您所在的地区",
    },
    "en": {
        "welcome": "This is the notice hotline of {office}.",
        "menu.whole": "For notices for all of {area}, press {key}.",
        "menu.area": "For {area}, press {key}.",
        "menu.top": "Please choose your area.",
        "menu.hash": "Enter the number, then press the hash key.",
        "duty": "To speak to the duty officer, press 0.",
        "count": "There are {count} notices in force for {area}.",
        "position": "Notice {number} of {count}.",
        "choices.confirm": "Press 1 to confirm you heard this notice. ",
        "choices": "Press 2 to hear it again, 3 for the next notice.",
        "confirmed": "Thank you, your confirmation is recorded.",
        "last": "That was the last notice.",
        "none": "There is no notice in force for {area} now.",
        "none.last": "The last notice was issued on {time}.",
        "none.ever": "No notice has been issued for {area} yet.",
        "invalid": "That key is not one of the choices.",
        "connecting": "Connecting you to the duty officer, please hold.",
        "goodbye": "Thank you for calling. Goodbye.",
        "your_area": "your area",
    },
}


def prompt_language(language: str | None) -> str:
    """The language of the prompts for a caller who speaks ``language`` (Chinese when unknown)."""
    return wording_language(language or "zh")


def prompt(language: str, name: str, **values) -> str:
    return PROMPTS[prompt_language(language)][name].format(**values)


def welcome(language: str, office: str) -> str:
    return prompt(language, "welcome", office=office)


def menu(language: str, whole: str | None, choices: Sequence[str], *, duty: bool) -> str:
    """The keys of an area menu: 1 for all of ``whole`` (when given), then each of
    ``choices`` in order; more than nine choices are keyed in and ended with #."""
    first = 1
    parts = []
    if whole is None:
        parts.append(prompt(language, "menu.top"))
    else:
        parts.append(prompt(language, "menu.whole", area=whole, key=1))
        first = 2
    parts += [prompt(language, "menu.area", area=name, key=key)
              for key, name in enumerate(choices, start=first)]
    if first + len(choices) - 1 > 9:
        parts.append(prompt(language, "menu.hash"))
    if duty:
        parts.append(prompt(language, "duty"))
    return _joined(language, parts)


def count(language: str, area: str | None, notices: int) -> str:
    return prompt(language, "count", area=area or prompt(language, "your_area"), count=notices)


def position(language: str, number: int, notices: int) -> str:
    return prompt(language, "position", number=number, count=notices)


def choices(language: str, *, confirm: bool, duty: bool) -> str:
    """The keys after a notice: 1 confirms (only a roster caller has a delivery to confirm),
    2 repeats, 3 goes on, 0 the duty officer when there is one."""
    parts = [prompt(language, "choices.confirm") if confirm else "", prompt(language, "choices")]
    if duty:
        parts.append(prompt(language, "duty"))
    return _joined(language, parts)


def no_notice(language: str, area: str | None, last_issued: datetime | None,
              context: RenderContext) -> str:
    """Nothing in force for the area, and when the last notice was issued (if ever)."""
    area = area or prompt(language, "your_area")
    if last_issued is None:
        return prompt(language, "none.ever", area=area)
    return _joined(language, [prompt(language, "none", area=area),
                              prompt(language, "none.last",
                                     time=said_time(prompt_language(language), last_issued,
                                                    context))])


def _joined(language: str, parts: Sequence[str]) -> str:
    separator = "" if prompt_language(language) == "zh" else " "
    return separator.join(part.strip() if separator else part for part in parts if part).strip()
