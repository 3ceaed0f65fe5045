"""Settings are read once, in gateway/config.py, and every one is in the README's table."""
from __future__ import annotations

import os
import re
import stat

import pytest

from gateway import config, create_app

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def documented_settings() -> set[str]:
    with open(README, encoding="utf-8") as readme:
        text = readme.read()
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\|([^|]+)\|", section, re.M)
    return {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def test_every_setting_is_in_the_readme_table_and_nothing_else_is():
    assert documented_settings() == set(config.SETTINGS)


def test_a_bad_value_names_its_variable():
    with pytest.raises(config.ConfigError, match="environment variable SMS_RATE"):
        config.from_env({"SMS_RATE": "fast"})


def test_speech_voices_add_to_and_replace_the_defaults_by_canonical_language():
    assert config.from_env({})["SPEECH_VOICES"] == {"zh": "cmn-latn-pinyin", "yue": "yue",
                                                    "en": "en-us"}
    voices = config.from_env({"SPEECH_VOICES": "hak=hak, cmn=cmn ,en-US="})["SPEECH_VOICES"]
    assert voices == {"zh": "cmn", "yue": "yue", "hak": "hak"}


@pytest.mark.parametrize("raw, words", [
    ("yue", "'yue' is not language=voice"),
    ("xx-!!=yue", "'xx-!!' is not a language tag"),
    ("yue=../yue", "'../yue' is not an espeak-ng voice name"),
])
def test_a_bad_voice_table_stops_start_up_naming_it(raw, words):
    with pytest.raises(config.ConfigError, match=f"environment variable SPEECH_VOICES: {re.escape(words)}"):
        config.from_env({"SPEECH_VOICES": raw})


def test_tongbao_instance_moves_the_owner_only_instance_folder(tmp_path, monkeypatch):
    folder = tmp_path / "kept"
    monkeypatch.setenv("TONGBAO_INSTANCE", str(folder))
    app = create_app({"TESTING": True})
    assert app.instance_path == str(folder)
    assert app.config["DATABASE_URL"] == "sqlite:///" + str(folder / "tongbao.db")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
