"""The compose page (/announcements/new): its checks, the area tree, the draft rendered per
channel and spoken, the preview, and submitting for approval."""
from __future__ import annotations

import os
import re
import time

import pytest

from gateway.delivery import lifecycle
from gateway.web.console import auth as console_auth
from messages import audio
from tests.gateway.conftest import DISTRICT, RESIDENTS
from tests.gateway.console.conftest import (announcement_count, compose_form, csrf_token, login,
                                            page, state_of, submit)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("overrides, field, problem", [
    ({"headline": ""}, "标题", "必须填写。"),
    ({"body": "   "}, "正文", "必须填写。"),
    ({"headline": "长" * 141}, "标题", "共 141 个字，上限为 140 个字。"),
    ({"body": "长" * 4001}, "正文", "共 4001 个字，上限为 4000 个字。"),
    ({"instruction": "长" * 1001}, "居民应采取的行动", "共 1001 个字，上限为 1000 个字。"),
    ({"areas": None}, "目标地区", "请至少选择一个地区。"),
    ({"areas": ["450702999999"]}, "目标地区", "地区 450702999999 不在地区登记中。"),
    ({"channels": None}, "渠道", "请至少选择一个渠道。"),
    ({"status": "panic"}, "通知类型", "“panic”不是可选的值。"),
    ({"expires": "2001-01-01T00:00"}, "失效时间", "已经过去。"),
    ({"expires": "tomorrow"}, "失效时间", "不是有效的日期和时间。"),
])
def test_compose_refuses_bad_input_in_chinese_and_saves_nothing(app, client, overrides, field,
                                                                problem):
    """The field by its label and what is wrong with it, both in the officer's language."""
    login(client, "author")
    for action in ({}, {"submit": "1"}):
        response = client.post("/announcements/new",
                               data={**compose_form(client, **overrides), **action})
        assert response.status_code == 422
        error = re.search(r'id="form-error">(.*?)</p>', page(response), re.S).group(1)
        assert f"“{field}”" in error and problem in error
        assert not re.search(r"[A-Za-z]{3,}", error.replace("panic", ""))
    assert announcement_count(app) == 0


@pytest.mark.parametrize("original_status, status", [("actual", "test"), ("exercise", "actual")])
def test_a_drill_never_updates_a_real_alert_nor_the_reverse(app, client, original_status,
                                                            status):
    login(client, "author")
    original = submit(client, status=original_status)
    before = announcement_count(app)
    for action in ({}, {"submit": "1"}):  # refused at the preview already
        response = client.post("/announcements/new", data={**compose_form(
            client, status=status, msg_type="update", references=str(original)), **action})
        assert response.status_code == 422
        assert "“通知类型”" in page(response) and "演练不能替代真实预警，反之亦然。" in \
            page(response)
    assert announcement_count(app) == before


def test_a_refused_form_keeps_what_was_typed(client):
    login(client, "author")
    response = client.post("/announcements/new",
                           data=compose_form(client, headline="", body="保留这段正文"))
    assert "保留这段正文" in page(response)


def test_compose_page_shows_the_area_tree_with_resident_counts(client):
    login(client, "author")
    html = page(client.get("/announcements/new"))
    district_residents = len(RESIDENTS) - 1
    assert re.search(rf'value="{DISTRICT}" data-residents="{district_residents}"', html)
    assert "沙埠村" in html and "新屋村" in html


def test_the_draft_renders_per_channel_while_typing(client):
    login(client, "author")
    rendered = client.post("/announcements/draft.json",
                           data=compose_form(client, status="exercise", headline="")).json
    assert set(rendered) == {"sms", "voice", "wechat", "loudspeaker", "counts", "language_warning"}
    assert rendered["sms"]["text"].startswith("【钦州发布】【演练】")
    assert rendered["sms"]["data"]["segments"] >= 1
    assert "演练" in rendered["voice"]["text"]
    assert rendered["wechat"]["data"]["template"]


def test_the_draft_counts_each_text_as_the_submit_does_and_cuts_nothing(client):
    """Over the limit the counter says so; the text is neither cut in the form nor accepted."""
    login(client, "author")
    body = " \u202e" + "长" * 4001 + "\n"  # bidi override and spaces are not counted
    rendered = client.post("/announcements/draft.json",
                           data=compose_form(client, body=body, headline="暴雨")).json
    assert rendered["counts"]["body"] == {"characters": 4001, "limit": 4000}
    assert rendered["counts"]["headline"] == {"characters": 2, "limit": 140}
    assert 'maxlength' not in page(client.get("/announcements/new"))
    refused = client.post("/announcements/new", data={**compose_form(client, body=body)})
    assert refused.status_code == 422 and "长" * 4001 in page(refused)


def test_the_draft_warns_when_its_text_is_not_in_the_chosen_language(client):
    login(client, "author")
    english_as_chinese = client.post("/announcements/draft.json", data=compose_form(
        client, headline="Flood warning", body="Heavy rain tonight.", instruction="")).json
    chinese = client.post("/announcements/draft.json", data=compose_form(client)).json
    chinese_as_english = client.post("/announcements/draft.json",
                                     data=compose_form(client, language="en")).json
    assert english_as_chinese["language_warning"] == "zh"
    assert chinese["language_warning"] == ""
    assert chinese_as_english["language_warning"] == "en"


def test_the_draft_speech_can_be_listened_to(client):
    login(client, "author")
    form = compose_form(client, status="exercise")
    synthesized = client.post("/announcements/draft-audio", data=form)
    assert synthesized.status_code == 200
    assert synthesized.json["url"].startswith("/media/a0-zh-")
    assert synthesized.json["seconds"] > 0
    served = client.get(synthesized.json["url"])
    assert served.status_code == 200 and served.mimetype == "audio/wav"
    assert served.data.startswith(b"RIFF") and served.data[8:12] == b"WAVE"
    # Content-addressed: the same draft gets the same file, a changed one another.
    assert client.post("/announcements/draft-audio", data=form).json == synthesized.json
    changed = client.post("/announcements/draft-audio", data={**form, "headline": "台风预警"})
    assert changed.json["url"] != synthesized.json["url"]


def test_draft_speech_an_hour_old_is_removed_when_a_new_draft_is_heard(app, client):
    login(client, "author")
    form = compose_form(client)
    first = client.post("/announcements/draft-audio", data=form).json["url"]
    first_file = os.path.join(app.config["MEDIA_DIR"], first.rsplit("/", 1)[1])
    two_hours_ago = time.time() - 7200
    os.utime(first_file, (two_hours_ago, two_hours_ago))
    second = client.post("/announcements/draft-audio", data={**form, "headline": "台风预警"}).json
    assert not os.path.exists(first_file) and client.get(first).status_code == 404
    assert client.get(second["url"]).status_code == 200


def test_a_failed_synthesis_says_so_in_the_clerks_language(client, monkeypatch):
    def fail(*args, **kwargs):
        raise audio.SynthesisError("espeak-ng is missing")
    monkeypatch.setattr(audio, "ensure_audio", fail)
    login(client, "author")
    response = client.post("/announcements/draft-audio", data=compose_form(client))
    assert response.status_code == 503 and "暂时无法合成语音" in response.json["error"]


def test_draft_audio_needs_a_login(client):
    response = client.post("/announcements/draft-audio",
                           data={"csrf_token": csrf_token(client), "headline": "h"})
    assert response.status_code == 302 and response.location.startswith("/login")
    polled = client.post("/announcements/draft-audio", data={"csrf_token": csrf_token(client)},
                         headers={console_auth.BACKGROUND_HEADER: "1"})
    assert polled.status_code == 401


def test_preview_shows_counts_and_weak_groups_before_anything_is_saved(app, client):
    login(client, "author")
    response = client.post("/announcements/new", data=compose_form(client, channels=["sms"]))
    html = page(response)
    assert response.status_code == 200 and announcement_count(app) == 0
    assert "7 位居民" in html                      # the district, the other district excluded
    assert 'class="weak"' in html                  # SMS alone is fewer than two channels
    assert "预计费用" in html and "提交审批" in html


def test_preview_says_who_will_hear_mandarin_for_want_of_a_voice(app, client):
    from dataclasses import replace as changed

    from gateway.store import roster
    from tests.gateway.conftest import person
    speakers = [changed(person(f"韦{n}", phone=f"+86138000009{n:02d}", visual=True, born=1940),
                        spoken_language="za") for n in range(3)]
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, speakers)
    login(client, "author")
    html = page(client.post("/announcements/new", data=compose_form(client)))
    assert "3 位居民将听到普通话：没有壮语语音" in html


def test_preview_then_submit_waits_for_approval(app, client):
    login(client, "author")
    announcement_id = submit(client)
    assert state_of(app, announcement_id) == "awaiting_approval"
    assert "等待审批" in page(client.get(f"/announcements/{announcement_id}"))


def test_the_preview_shows_the_severity_and_says_an_estimate_is_the_outbox_s(app, client):
    """No provider is configured here: every channel writes to the outbox, and the estimate
    says it is the outbox's speed rather than passing for a provider's."""
    login(client, "author")
    html = page(client.post("/announcements/new", data={**compose_form(client, severity="severe"),
                                                        "preview": "1"}))
    assert re.search(r'id="preview-severity">[^<]*严重/橙色·II级</p>', html)
    assert "没有配置服务商" in html and html.count("（发件箱）") == 4
    app.config.update(TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t",
                      TWILIO_FROM_NUMBER="+15005550006")
    html = page(client.post("/announcements/new", data={**compose_form(client), "preview": "1"}))
    assert html.count("（发件箱）") == 2  # SMS and calls go to Twilio now


def translations_of(app, announcement_id: int) -> list[tuple]:
    with app.extensions["engine"].connect() as conn:
        return [(t.language, t.headline, t.body, t.instruction)
                for t in lifecycle.translations(conn, announcement_id)]


def test_translations_typed_in_the_form_are_kept_and_an_update_starts_from_them(app, client):
    """#19, item 4: texts in further languages from the compose form, by any BCP 47 tag; the
    preview counts them; an update's form holds the original's to edit."""
    login(client, "author")
    texts = {"translation_language": ["en-US", "zh-yue", ""],
             "translation_headline": ["Red rainstorm warning", "紅色暴雨警告", ""],
             "translation_body": ["Very heavy rain.", "好大雨。", ""],
             "translation_instruction": ["Move to safe ground.", "", ""]}
    preview = client.post("/announcements/new", data=compose_form(client, **texts))
    assert preview.status_code == 200
    assert 'class="texts-by-language"' in page(preview)
    assert page(preview).count('name="translation_language"') == 2  # kept for the submit
    original = submit(client, **texts)
    assert translations_of(app, original) == [
        ("en", "Red rainstorm warning", "Very heavy rain.", "Move to safe ground."),
        ("yue", "紅色暴雨警告", "好大雨。", "")]
    form = page(client.get(f"/announcements/new?update_of={original}"))
    assert 'value="Red rainstorm warning"' in form and "好大雨。" in form
    assert form.count('name="translation_language"') == 3  # the two kept and one empty


def test_a_translation_in_an_unknown_language_is_refused_by_its_field(app, client):
    login(client, "author")
    response = client.post("/announcements/new", data=compose_form(
        client, translation_language=["xx"], translation_headline=["?"],
        translation_body=["?"], translation_instruction=[""]))
    assert response.status_code == 422 and 'id="form-error"' in page(response)
    assert announcement_count(app) == 0
