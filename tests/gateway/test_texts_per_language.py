"""Every resident in their own language (#19, "done when"): a roster with zh-CN, yue, hak, za
and en rows imports; a notice with Chinese and English texts sends Chinese SMS and a Cantonese
call to a Cantonese speaker, English SMS and call to an English speaker, Chinese SMS and a
Mandarin call (a fallback, counted) to a Zhuang speaker; a village set to Mandarin then
Cantonese gets both audios in one loudspeaker command; speech is made once per (announcement,
text language, voice) and shared by calls and loudspeakers. Real espeak-ng, rq jobs, outbox."""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from gateway.store import roster, speakers
from gateway.store.schema import devices, residents
from messages import audio
from tests.conftest import run_jobs
from tests.gateway.conftest import VILLAGE_B
from tests.gateway.test_spoken_languages import outbox_by_address

pytestmark = pytest.mark.integration

# Blind and born in 1950: the policy calls them and sends an SMS.
ROSTER = ("name,phone,area_code,birth_year,visually_impaired,language,spoken_language\n"
          f"黄伯,+8613800000041,{VILLAGE_B},1950,true,zh-CN,yue\n"
          f"黄婶,+8613800000042,{VILLAGE_B},1951,true,zh-Hans,zh-yue\n"
          f"曾叔,+8613800000043,{VILLAGE_B},1952,true,zh-CN,hak\n"
          f"韦婆,+8613800000044,{VILLAGE_B},1948,true,za,\n"
          f"Smith,+8613800000045,{VILLAGE_B},1950,true,en-US,\n")
CANTONESE, CANTONESE_TOO, HAKKA, ZHUANG, ENGLISH = (f"+86138000000{n}" for n in range(41, 46))
NOTICE = {"headline": "暴雨红色预警", "body": "预计未来3小时有特大暴雨。", "instruction": "请转移到安全地带。",
          "severity": "moderate", "areas": [VILLAGE_B], "language": "zh-CN",
          "translations": [{"language": "en-US", "headline": "Red rainstorm warning",
                            "body": "Very heavy rain in the next 3 hours.",
                            "instruction": "Move to safe ground."}]}


@pytest.fixture
def syntheses(monkeypatch):
    """Every speech file made, by (text language, voice)."""
    made: Counter = Counter()
    synthesize = audio.synthesize

    def counted(text, language, path, *, rate=None, voice=None):
        made[language, voice] += 1
        return synthesize(text, language, path, rate=rate, voice=voice)

    monkeypatch.setattr(audio, "synthesize", counted)
    return made


def import_roster(app):
    with app.extensions["engine"].begin() as conn:
        result = roster.import_residents(conn, ROSTER.encode(), "admin")
    assert result.added == 5
    with app.extensions["engine"].connect() as conn:
        return {row.phone: (row.language, row.spoken_language) for row in
                conn.execute(residents.select().where(
                    residents.c.phone.in_([CANTONESE, HAKKA, ZHUANG, ENGLISH])))}


def test_each_resident_gets_their_language_and_the_village_both_audios(app, api, syntheses):
    assert import_roster(app) == {CANTONESE: ("zh", "yue"), HAKKA: ("zh", "hak"),
                                  ZHUANG: ("za", "za"), ENGLISH: ("en", "en")}
    cli = app.test_cli_runner().invoke(args=["areas", "languages", VILLAGE_B, "cmn", "yue"])
    assert cli.exit_code == 0 and f"area {VILLAGE_B} speaks zh then yue" in cli.output
    created = api("author").post("/api/v1/announcements", json=NOTICE)
    assert created.status_code == 201, created.json
    announcement_id = created.json["id"]

    preview = api("author").get(f"/api/v1/announcements/{announcement_id}/preview").json
    texts = {text["language"]: text for text in preview["texts"]}
    assert [text["language"] for text in preview["texts"]] == ["zh", "en"]
    assert (texts["en"]["residents"], texts["en"]["fallback"]) == (1, 0)
    assert (texts["zh"]["fallback"], texts["zh"]["fallback_from"]) == (1, {"za": 1})
    assert {"spoken_language": "za", "heard_language": "zh", "residents": 1,
            "reason": "no_voice"} in preview["voice_fallbacks"]
    assert {s["language"] for s in preview["segments"]} >= {"zh", "za", "en"}

    assert api("approver").post(f"/api/v1/announcements/{announcement_id}/approve").status_code == 200
    run_jobs(app)
    sent = outbox_by_address(app, announcement_id)
    media = f"/media/a{announcement_id}"
    # The Cantonese speaker: Chinese SMS, the Chinese text read in Cantonese.
    assert (sent["sms", CANTONESE]["language"], sent["voice", CANTONESE]["language"]) == ("zh", "zh")
    assert "暴雨红色预警" in sent["sms", CANTONESE]["text"]
    assert f"{media}-zh-yue-" in sent["voice", CANTONESE]["audio_url"]
    # The English speaker: English SMS and call.
    assert "Red rainstorm warning" in sent["sms", ENGLISH]["text"]
    assert sent["voice", ENGLISH]["language"] == "en"
    assert f"{media}-en-en-us-" in sent["voice", ENGLISH]["audio_url"]
    # The Zhuang speaker: Chinese SMS (no Zhuang text) and a Mandarin call (no Zhuang voice).
    assert sent["sms", ZHUANG]["language"] == "zh" and "暴雨红色预警" in sent["sms", ZHUANG]["text"]
    mandarin = sent["voice", ZHUANG]["audio_url"]
    assert f"{media}-zh-cmn-latn-pinyin-" in mandarin

    # The village speaks Mandarin then Cantonese: one command, both audios, in that order,
    # the very files the calls play.
    speaker = sent["loudspeaker", "spk-b"]
    assert speaker["audio_url"] == mandarin
    assert [(part["language"], part["audio_url"]) for part in speaker["followed_by"]] == [
        ("yue", sent["voice", CANTONESE]["audio_url"])]

    # Speech made once per (text language, voice): two Cantonese speakers and the loudspeaker
    # share one Cantonese file, the Zhuang and Hakka speakers and the loudspeaker one Mandarin.
    assert sent["voice", CANTONESE_TOO]["audio_url"] == sent["voice", CANTONESE]["audio_url"]
    assert sent["voice", HAKKA]["audio_url"] == mandarin
    assert syntheses == {("zh", "yue"): 1, ("zh", "cmn-latn-pinyin"): 1, ("en", "en-us"): 1}


def test_a_device_speaks_its_own_languages_before_its_village_and_a_village_its_towns(app, county):
    with app.extensions["engine"].begin() as conn:
        speakers.set_area_languages(conn, VILLAGE_B[:9], ("zh", "yue"), "admin")
        speakers.set_device_languages(conn, "spk-a", ("yue",), "admin")
        ids = dict(conn.execute(select(devices.c.device_id, devices.c.id)).all())
        found = speakers.device_languages(conn, ids.values())
    # spk-b (VILLAGE_B) takes its town's; spk-a its own; spk-other, in another district, none.
    assert found == {ids["spk-b"]: ("zh", "yue"), ids["spk-a"]: ("yue",)}


@pytest.mark.parametrize("given, refused", [(["xx"], "names no known language"),
                                            (["zh en yue hak"], "at most 3")])
def test_bad_languages_are_refused_by_the_command(app, county, given, refused):
    result = app.test_cli_runner().invoke(args=["speakers", "languages", "spk-a", *given])
    assert result.exit_code != 0 and refused in result.output
