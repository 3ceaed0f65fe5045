"""messages/languages.py: BCP 47 tags brought to one canonical form, and which voice reads what."""
from __future__ import annotations

import pytest

from messages.languages import LanguageError, canonical, reads_aloud


@pytest.mark.parametrize("tag, language", [
    ("zh", "zh"), ("zh-CN", "zh"), ("zh-Hans", "zh"), ("zh-TW", "zh"), ("cmn", "zh"),
    ("cmn-Hans-CN", "zh"), ("ZH-cn", "zh"), (" zh ", "zh"), ("yue", "yue"), ("zh-yue", "yue"),
    ("hak", "hak"), ("zh-hakka", "hak"), ("za", "za"), ("en", "en"), ("en-US", "en"),
    ("en-GB", "en"), ("es-US", "es"), ("fr", "fr"),
])
def test_tags_as_people_write_them_have_one_canonical_form(tag, language):
    assert canonical(tag) == language


@pytest.mark.parametrize("tag, words", [
    ("xx-!!", "is not a language tag"), ("", "is not a language tag"), ("粤语", "is not a language tag"),
    ("xx", "names no known language"), ("und", "names no known language"),
    ("mul", "names no known language"), ("x-private", "names no known language"),
    ("zh-x-" + "abcdefgh-" * 10, "is longer than a language tag"),
])
def test_a_malformed_or_unknown_tag_is_refused_saying_why(tag, words):
    with pytest.raises(LanguageError, match=words):
        canonical(tag)


def test_chinese_varieties_read_chinese_text_and_nothing_else():
    assert reads_aloud("yue", "zh") and reads_aloud("hak", "zh") and reads_aloud("zh", "zh")
    assert not reads_aloud("za", "zh") and not reads_aloud("yue", "en") and not reads_aloud("zh", "en")
