"""Written and spoken languages (#19): a Cantonese speaker who reads Chinese gets Chinese SMS and
a call read in Cantonese; a Zhuang speaker, with no voice for Zhuang, a Mandarin call counted
as a fallback, in the preview too. Real espeak-ng, real rq jobs, the outbox."""
from __future__ import annotations

from dataclasses import replace

import pytest

from channels import outbox
from gateway.delivery import providers
from gateway.store import roster
from messages import audio
from tests.conftest import run_jobs
from tests.gateway.conftest import VILLAGE_B, announcement, person

pytestmark = pytest.mark.integration

# Blind, so the policy calls them and sends an SMS; in VILLAGE_B, whose other residents the
# county fixture also has.
CANTONESE = replace(person("黄伯", VILLAGE_B, phone="+8613800000031", visual=True, born=1950,
                           language="zh"), spoken_language="yue")
ZHUANG = replace(person("韦婆", VILLAGE_B, phone="+8613800000032", visual=True, born=1948,
                        language="zh"), spoken_language="za")
HAKKA = replace(person("曾叔", VILLAGE_B, phone="+8613800000033", visual=True, born=1952,
                       language="zh"), spoken_language="hak")


def add_listeners(app) -> None:
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [CANTONESE, ZHUANG, HAKKA])


def create(api, **fields) -> int:
    created = api("author").post("/api/v1/announcements",
                                 json=announcement(areas=[VILLAGE_B], **fields))
    assert created.status_code == 201, created.json
    return created.json["id"]


def outbox_by_address(app, announcement_id) -> dict[tuple[str, str], dict]:
    records, _ = outbox.read(providers.outbox_path(app), announcement_id=announcement_id)
    return {(r["channel"], r["address"]): r for r in records}


def test_a_cantonese_speaker_hears_the_chinese_text_in_cantonese(app, api):
    add_listeners(app)
    announcement_id = create(api)
    assert api("approver").post(f"/api/v1/announcements/{announcement_id}/approve").status_code == 200
    run_jobs(app)
    sent = outbox_by_address(app, announcement_id)
    cantonese_call = sent["voice", CANTONESE.phone]
    mandarin_call = sent["voice", ZHUANG.phone]
    # The same Chinese text, SMS and call script alike.
    assert sent["sms", CANTONESE.phone]["language"] == "zh"
    assert "暴雨红色预警" in sent["sms", CANTONESE.phone]["text"]
    assert cantonese_call["language"] == "zh" and "暴雨红色预警" in cantonese_call["text"]
    # Read by the yue voice for the Cantonese speaker, by Mandarin for Zhuang and Hakka.
    assert f"/media/a{announcement_id}-zh-yue-" in cantonese_call["audio_url"]
    assert f"/media/a{announcement_id}-zh-cmn-latn-pinyin-" in mandarin_call["audio_url"]
    assert sent["voice", HAKKA.phone]["audio_url"] == mandarin_call["audio_url"]
    # The file served is real Cantonese speech of the script, not silence.
    name = cantonese_call["audio_url"].rsplit("/", 1)[-1]
    info = audio.check(app.config["MEDIA_DIR"] + "/" + name, cantonese_call["text"], "zh")
    assert info.duration_seconds > 5
    served = app.test_client().get(f"/media/{name}")
    assert served.status_code == 200 and served.data[:4] == b"RIFF"


def test_the_preview_counts_who_will_hear_another_language_than_their_own(app, api):
    add_listeners(app)
    announcement_id = create(api)
    preview = api("author").get(f"/api/v1/announcements/{announcement_id}/preview").json
    assert preview["voice_fallbacks"] == [
        {"spoken_language": "hak", "heard_language": "zh", "residents": 1, "reason": "no_voice"},
        {"spoken_language": "za", "heard_language": "zh", "residents": 1, "reason": "no_voice"},
    ]



def test_the_api_takes_bcp47_tags_and_lists_both_languages_of_a_resident(app, api):
    add_listeners(app)
    created = api("author").post("/api/v1/announcements", json=announcement(
        language="zh-CN", translations=[{"language": "en-US", "headline": "Rain", "body": "Rain."}]))
    assert created.status_code == 201, created.json
    assert api("author").get(f"/api/v1/announcements/{created.json['id']}").json["languages"] == [
        "zh", "en"]
    refused = api("author").post("/api/v1/announcements", json=announcement(language="xx-!!"))
    assert refused.status_code == 422 and refused.json["field"] == "language"
    listed = api("admin").get(f"/api/v1/residents?area={VILLAGE_B}&per_page=100").json["residents"]
    assert {(r["name"], r["language"], r["spoken_language"]) for r in listed} >= {
        ("黄伯", "zh", "yue"), ("韦婆", "zh", "za"), ("曾叔", "zh", "hak")}
