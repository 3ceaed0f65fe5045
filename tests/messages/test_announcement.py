"""Announcement validation: what is accepted, and errors that name the field."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from messages.announcement import ValidationError, parse_announcement

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
GOOD = {"headline": "暴雨预警", "body": "特大暴雨。", "areas": ["450702"]}


def parse(**fields):
    return parse_announcement({**GOOD, **fields}, now=NOW)


def test_defaults_and_case_insensitive_enumerations():
    result = parse(severity="Extreme", status="EXERCISE", msg_type="Alert", urgency="Immediate",
                   certainty="Observed", category="Met", channels=["SMS", "wechat", "sms"])
    assert (result.severity, result.status, result.msg_type) == ("extreme", "exercise", "alert")
    assert (result.urgency, result.certainty, result.category) == ("immediate", "observed", "met")
    assert result.channels == ["sms", "wechat"]
    assert parse().channels == ["sms", "voice", "wechat", "loudspeaker"]
    assert parse().language == "zh" and parse().status == "actual"


@pytest.mark.parametrize("tag, language", [
    ("zh", "zh"), ("zh-CN", "zh"), ("zh-Hans", "zh"), ("cmn", "zh"), ("ZH-cn", "zh"), ("en-US", "en"),
])
def test_language_tags_as_people_write_them_are_kept_in_their_canonical_form(tag, language):
    result = parse(language=tag, translations=[{**ENGLISH, "language": "en-US" if language == "zh" else "zh-CN"}])
    assert result.language == language
    assert [t.language for t in result.translations] == ["en" if language == "zh" else "zh"]


def test_expiry_is_kept_in_utc():
    result = parse(expires="2026-11-29T08:00:00+08:00")
    assert result.expires == datetime(2026, 11, 29, 0, 0, tzinfo=timezone.utc)
    assert parse(expires="2026-11-29T00:00:00Z").expires == result.expires


@pytest.mark.parametrize("fields, field, message", [
    ({"headline": ""}, "headline", "is required"),
    ({"headline": "   "}, "headline", "is required"),
    ({"headline": 5}, "headline", "must be text"),
    ({"headline": "长" * 141}, "headline", "141 characters long; the limit is 140"),
    ({"body": "x" * 4001}, "body", "the limit is 4000"),
    ({"severity": "catastrophic"}, "severity", "is not one of extreme"),
    ({"status": "system"}, "status", "is not one of actual"),
    ({"language": "xx"}, "language", "'xx' names no known language"),
    ({"language": "xx-!!"}, "language", "'xx-!!' is not a language tag"),
    ({"language": 7}, "language", "7 is not a language tag"),
    ({"areas": []}, "areas", "non-empty list"),
    ({"areas": "450702"}, "areas", "non-empty list"),
    ({"areas": ["4507"]}, "areas[0]", "is not an administrative code"),
    ({"areas": ["450702", "45070x"]}, "areas[1]", "is not an administrative code"),
    ({"channels": ["fax"]}, "channels[0]", "'fax' is not one of"),
    ({"channels": []}, "channels", "non-empty list"),
    ({"expires": "tomorrow"}, "expires", "not an ISO 8601"),
    ({"expires": "2026-11-29T08:00:00"}, "expires", "needs a time zone offset"),
    ({"expires": "2026-11-01T08:00:00+08:00"}, "expires", "already past"),
    ({"colour": "red"}, "colour", "is not a field"),
])
def test_bad_fields_are_named(fields, field, message):
    with pytest.raises(ValidationError) as caught:
        parse(**fields)
    assert caught.value.field == field
    assert message in caught.value.message


def test_a_non_object_is_refused():
    with pytest.raises(ValidationError, match="expected a JSON object"):
        parse_announcement(["headline"], now=NOW)


ENGLISH = {"language": "en", "headline": "Rainstorm warning", "body": "Very heavy rain."}


def test_translations_are_kept_in_their_languages():
    result = parse(translations=[{**ENGLISH, "language": "EN", "instruction": " Stay inside. ",
                                  "event": "Rainstorm"}])
    assert result.language == "zh"
    assert [vars(text) for text in result.translations] == [{
        "language": "en", "headline": "Rainstorm warning", "body": "Very heavy rain.",
        "instruction": "Stay inside.", "event": "Rainstorm"}]
    assert parse().translations == []


@pytest.mark.parametrize("translations, field, message", [
    ("Rainstorm warning", "translations", "give a list of objects"),
    (["Rainstorm warning"], "translations[0]", "expected an object"),
    ([{**ENGLISH, "headline": ""}], "translations[0].headline", "is required"),
    ([{**ENGLISH, "headline": "x" * 141}], "translations[0].headline", "the limit is 140"),
    ([{**ENGLISH, "body": "x" * 4001}], "translations[0].body", "the limit is 4000"),
    ([{**ENGLISH, "instruction": "x" * 1001}], "translations[0].instruction", "the limit is 1000"),
    ([{**ENGLISH, "event": 7}], "translations[0].event", "must be text"),
    ([{**ENGLISH, "language": None}], "translations[0].language", "is required"),
    ([{**ENGLISH, "language": "qq"}], "translations[0].language", "names no known language"),
    ([{**ENGLISH, "language": "en-US"}, {**ENGLISH, "language": "en-GB"}], "translations[1].language",
     "a second translation in en"),
    ([{**ENGLISH, "severity": "minor"}], "translations[0].severity", "is not a field"),
    ([{**ENGLISH, "language": "zh"}], "translations[0].language", "the announcement's own"),
    ([ENGLISH, ENGLISH], "translations[1].language", "a second translation in en"),
])
def test_bad_translations_are_named_by_their_position(translations, field, message):
    with pytest.raises(ValidationError) as caught:
        parse(translations=translations)
    assert caught.value.field == field
    assert message in caught.value.message


def test_a_translation_may_be_in_the_language_an_english_announcement_is_not():
    result = parse(language="en", translations=[{**ENGLISH, "language": "zh"}])
    assert (result.language, [text.language for text in result.translations]) == ("en", ["zh"])


def test_texts_may_be_in_any_known_language_as_canonical_tags():
    """#19, item 4: Spanish, Cantonese, Zhuang; not only the languages with built-in wording."""
    parsed = parse(language="zh-CN", translations=[
        {**ENGLISH, "language": "es-US"}, {**ENGLISH, "language": "zh-yue"},
        {**ENGLISH, "language": "za"}])
    assert parsed.language == "zh"
    assert [t.language for t in parsed.translations] == ["es", "yue", "za"]
