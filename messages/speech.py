"""What is spoken on a call and over a village loudspeaker.

A listener cannot scroll back, so the script says who is speaking first, marks
drills before and after the content, and plays the whole message twice. Text
meant for the ear also needs its numbers spelt out: espeak-ng's Mandarin voice
reads Arabic digits badly, and a hotline read as a quantity ("一万二千三百四十五")
cannot be dialled, so ``speak_numbers`` writes them the way a person reads them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from messages.phrases import phrase, wording_language
from messages.render_types import AnnouncementView, RenderContext, Rendered

DRILL_STATUSES = ("test", "exercise")
SENTENCE_ENDINGS = ("。", "！", "？", ".", "!", "?")


def script(announcement: AnnouncementView, language: str, context: RenderContext) -> str:
    message = " ".join(_sentence(part, language) for part in _message_parts(
        announcement, language, context) if part)
    spoken = f"{message} {phrase(language, 'repeat')} {message}"
    return speak_numbers(spoken, language)


# A more severe notice interrupts a less severe one playing on the same loudspeaker.
BROADCAST_PRIORITY = {"extreme": 9, "severe": 7, "moderate": 5, "minor": 3}


def render_call(announcement: AnnouncementView, language: str, context: RenderContext) -> Rendered:
    """The call's script; ``data["say_text"]`` is the short one the provider's own speech
    says when there is no recording (see ``short_script``)."""
    return Rendered("voice", language, script(announcement, language, context),
                    {"audio_url": context.audio_url,
                     "say_text": short_script(announcement, language, context)})


def short_script(announcement: AnnouncementView, language: str, context: RenderContext) -> str:
    """Who is speaking, the drill or correction markers, the headline and the instruction,
    then where the rest is: what a call says when the speech could not be synthesized and
    a provider's text-to-speech, which takes far less text than a recording, stands in."""
    message = " ".join(_sentence(part, language) for part in _message_parts(
        announcement, language, context, with_body=False) if part)
    return speak_numbers(f"{message} {phrase(language, 'spoken.see_sms')}", language)


@dataclass(frozen=True)
class CallPrompts:
    """What a call says around the notice itself, in the notice's language."""

    question: str  # after the notice: 1 confirms, 2 plays it again
    thanks: str  # after 1, before hanging up
    goodbye: str  # after the last unanswered play, before hanging up


def call_prompts(language: str) -> CallPrompts:
    return CallPrompts(question=phrase(language, "call.prompt"),
                       thanks=phrase(language, "call.thanks"),
                       goodbye=phrase(language, "call.goodbye"))


def render_broadcast(announcement: AnnouncementView, language: str,
                     context: RenderContext) -> Rendered:
    data = {"drill": announcement.status in DRILL_STATUSES,
            "priority": BROADCAST_PRIORITY.get(announcement.severity, 5)}
    if context.audio_url and context.audio_sha256:
        data.update(audio_url=context.audio_url, audio_sha256=context.audio_sha256)
    return Rendered("loudspeaker", language, script(announcement, language, context), data)


def _message_parts(announcement: AnnouncementView, language: str, context: RenderContext,
                   *, with_body: bool = True) -> list[str]:
    drill = ""
    if announcement.status in DRILL_STATUSES:
        drill = phrase(language, f"drill.spoken.{announcement.status}")
    correction = ""
    if announcement.msg_type in ("cancel", "update"):
        correction = phrase(language, f"spoken.{announcement.msg_type}")
    instruction = ""
    if announcement.instruction:
        instruction = phrase(language, "spoken.instruction") + announcement.instruction
    opening = phrase(language, "spoken.opening").format(office=context.office(language))
    return [opening, drill, correction, announcement.headline,
            announcement.body if with_body else "", instruction, drill]


def _sentence(part: str, language: str) -> str:
    """End each part with a full stop so the synthesizer pauses between them."""
    part = part.strip()
    if part.endswith(SENTENCE_ENDINGS):
        return part
    return part + ("。" if wording_language(language) == "zh" else ".")


# --- Numbers, as a Mandarin speaker reads them aloud ---------------------------------

DIGITS = "零一二三四五六七八九"
# On the telephone "1" is said 幺 so it cannot be heard as 七 (110 → 幺幺零) ...
PHONE_DIGITS = "零幺二三四五六七八九"
# ... except the 123xx government service hotlines, whose names are said with 一
# (12345 → 一二三四五, as the hotline announces itself).
SERVICE_HOTLINE = re.compile(r"12\d{3}")

# A number followed by one of these counts something, so it is read as a quantity;
# a run of 3+ digits without one is a phone number or code, read digit by digit.
MEASURE_WORDS = (
    "小时", "分钟", "公里", "千米", "厘米", "毫米", "公斤", "千克", "毫升", "立方米", "平方米",
    "人", "名", "位", "户", "个", "日", "号", "月", "天", "周", "时", "分", "秒", "点", "岁",
    "元", "块", "万", "亿", "千", "百", "米", "斤", "吨", "亩", "度", "级", "层", "楼", "栋",
    "幢", "座", "所", "家", "辆", "条", "台", "次", "起", "处", "间", "套", "批", "倍", "只",
    "头", "项", "件", "张", "份", "例", "剂", "针", "趟", "班", "升", "年",
)
# A lone 2 before these is said 两 (两人, 两点), before others and after 第 二 (二号, 第二批).
LIANG_MEASURES = (
    "小时", "分钟", "公里", "千米", "公斤", "千克", "人", "名", "位", "户", "个", "天", "周",
    "点", "岁", "万", "亿", "千", "百", "米", "斤", "吨", "亩", "辆", "条", "台", "次", "起",
    "处", "间", "套", "批", "倍", "只", "头", "项", "件", "张", "份", "例", "剂", "针", "趟",
)
LATIN_UNITS = {"mm": "毫米", "cm": "厘米", "km": "公里", "kg": "公斤", "m": "米"}

FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９％", "0123456789%")

NUMBER_PATTERN = re.compile(
    r"(?P<date>(?<!\d)(?P<y>\d{4})[-/.](?P<mo>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d))"
    r"|(?P<time>(?<!\d)(?P<h>\d{1,2})[:：](?P<mi>\d{2})(?!\d))"
    r"|(?P<landline>(?<!\d)(?P<area>0\d{2,3})-(?P<local>\d{7,8})(?!\d))"
    r"|(?P<percent>(?P<pnum>\d+(?:\.\d+)?)\s*%)"
    r"|(?P<temperature>(?P<below>(?<!\d)-)?(?P<tnum>\d+(?:\.\d+)?)\s*℃)"
    r"|(?P<latin>(?P<lnum>\d+(?:\.\d+)?)\s*(?P<unit>mm|cm|km|kg|m)(?![A-Za-z/]))"
    r"|(?P<year>(?<!\d)(?P<ynum>\d{4})\s*年)"
    r"|(?P<decimal>(?<!\d)(?P<whole>\d+)\.(?P<fraction>\d+))"
    r"|(?P<integer>(?<!\d)(?P<inum>\d{1,3}(?:,\d{3})+|\d+)(?!\d)(?P<space>\s*))"
)
# Runs after the numbers are spelt out, so the dashes left between two of them are
# ranges (dates and landlines have been consumed): 18:00-20:00 → 十八点至二十点.
SPOKEN_NUMERAL = "零一二三四五六七八九十百千万亿两幺"
RANGE_PATTERN = re.compile(
    rf"(?<=[{SPOKEN_NUMERAL}点分号日月时度])\s*[-–~～]\s*(?=[{SPOKEN_NUMERAL}])")


def speak_numbers(text: str, language: str) -> str:
    """Spell out the Arabic numbers in Chinese text (Mandarin's numerals, which the Cantonese and
    Hakka voices read too); other languages pass through."""
    if wording_language(language) != "zh":
        return text
    spelt_out = NUMBER_PATTERN.sub(_spoken_number, text.translate(FULLWIDTH_DIGITS))
    return RANGE_PATTERN.sub("至", spelt_out)


def _spoken_number(match: re.Match) -> str:
    group = match.group
    if group("date"):
        return (f"{_digit_by_digit(group('y'), DIGITS)}年{_cardinal(int(group('mo')))}月"
                f"{_cardinal(int(group('d')))}日")
    if group("time"):
        return _clock(int(group("h")), int(group("mi"))) or group("time")
    if group("landline"):
        return f"{_digit_by_digit(group('area'), PHONE_DIGITS)}，{_code(group('local'))}"
    if group("percent"):
        return "百分之" + _quantity(group("pnum"))
    if group("temperature"):
        return ("零下" if group("below") else "") + _quantity(group("tnum")) + "摄氏度"
    if group("latin"):
        return _quantity(group("lnum")) + LATIN_UNITS[group("unit")]
    if group("year"):
        return _digit_by_digit(group("ynum"), DIGITS) + "年"
    if group("decimal"):
        return _quantity(group("decimal"))
    ordinal = match.string[:match.start()].endswith("第")
    return _integer(group("inum"), group("space"), match.string[match.end():], ordinal)


def _integer(digits: str, space: str, following: str, ordinal: bool) -> str:
    """The space between a number and its measure word is dropped (3 人 → 三人)."""
    measure = next((word for word in MEASURE_WORDS if following.startswith(word)), None)
    if measure:
        if digits == "2" and measure in LIANG_MEASURES and not ordinal:
            return "两"
        return _cardinal(int(digits.replace(",", "")))
    if len(digits) >= 3 and "," not in digits:
        return _code(digits) + space
    return _cardinal(int(digits.replace(",", ""))) + space


def _code(digits: str) -> str:
    table = DIGITS if SERVICE_HOTLINE.fullmatch(digits) else PHONE_DIGITS
    return _digit_by_digit(digits, table)


def _digit_by_digit(digits: str, table: str) -> str:
    return "".join(table[int(digit)] for digit in digits)


def _quantity(number: str) -> str:
    whole, _, fraction = number.partition(".")
    spoken = _cardinal(int(whole))
    if fraction:
        spoken += "点" + _digit_by_digit(fraction, DIGITS)
    return spoken


def _clock(hour: int, minute: int) -> str | None:
    if hour > 24 or minute > 59:
        return None
    spoken = ("两" if hour == 2 else _cardinal(hour)) + "点"
    if minute:
        spoken += ("零" if minute < 10 else "") + _cardinal(minute) + "分"
    return spoken


def _cardinal(number: int) -> str:
    """0 → 零, 15 → 十五, 105 → 一百零五, 12000 → 一万二千."""
    if number == 0:
        return "零"
    if number >= 10 ** 12:
        return _digit_by_digit(str(number), DIGITS)
    spoken = ""
    previous_group_empty = False
    for value, unit in ((number // 10 ** 8, "亿"), (number // 10 ** 4 % 10 ** 4, "万"),
                        (number % 10 ** 4, "")):
        if not value:
            previous_group_empty = bool(spoken)
            continue
        if spoken and (value < 1000 or previous_group_empty):
            spoken += "零"
        spoken += _four_digits(value) + unit
        previous_group_empty = False
    return spoken[1:] if spoken.startswith("一十") else spoken


def _four_digits(number: int) -> str:
    spoken = ""
    pending_zero = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = number // value % 10
        if not digit:
            pending_zero = bool(spoken)
            continue
        if pending_zero:
            spoken += "零"
        spoken += DIGITS[digit] + unit
        pending_zero = False
    return spoken
