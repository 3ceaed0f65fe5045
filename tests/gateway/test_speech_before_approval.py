"""Speech is made while an announcement awaits approval (#23, item 3): the job queued at submit
makes every file the plan will play (each village's languages, each caller's voice), so sending
after approval synthesizes nothing; a file lost before approval is made again by the send."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_jobs
from tests.gateway.conftest import VILLAGE_B
from tests.gateway.test_spoken_languages import outbox_by_address
from tests.gateway.test_texts_per_language import NOTICE, import_roster, syntheses  # noqa: F401

pytestmark = pytest.mark.integration
MADE_AT_SUBMIT = {("zh", "yue"): 1, ("zh", "cmn-latn-pinyin"): 1, ("en", "en-us"): 1}


def submit(app, api) -> int:
    import_roster(app)
    cli = app.test_cli_runner().invoke(args=["areas", "languages", VILLAGE_B, "cmn", "yue"])
    assert cli.exit_code == 0, cli.output
    created = api("author").post("/api/v1/announcements", json=NOTICE)
    assert created.status_code == 201, created.json
    return created.json["id"]


def approve_and_send(app, api, announcement_id: int) -> dict:
    assert api("approver").post(f"/api/v1/announcements/{announcement_id}/approve").status_code == 200
    run_jobs(app)
    return outbox_by_address(app, announcement_id)


def test_submitting_makes_the_speech_and_sending_makes_none(app, api, syntheses):
    announcement_id = submit(app, api)
    run_jobs(app)  # the speech job queued at submit, before anyone approves
    assert syntheses == MADE_AT_SUBMIT
    files = {path.name: path.stat().st_mtime_ns
             for path in _media(app).glob("*.wav")}
    assert len(files) == 3
    syntheses.clear()

    sent = approve_and_send(app, api, announcement_id)
    assert syntheses == {}
    assert {path.name: path.stat().st_mtime_ns for path in _media(app).glob("*.wav")} == files
    speaker = sent["loudspeaker", "spk-b"]
    assert speaker["audio_url"].rsplit("/", 1)[-1] in files
    assert [part["audio_url"].rsplit("/", 1)[-1] in files for part in speaker["followed_by"]] == [True]


def test_a_file_lost_before_approval_is_made_by_the_send(app, api, syntheses):
    announcement_id = submit(app, api)
    run_jobs(app)
    for path in _media(app).glob(f"a{announcement_id}-zh-yue-*.wav"):
        path.unlink()
    syntheses.clear()

    sent = approve_and_send(app, api, announcement_id)
    assert syntheses == {("zh", "yue"): 1}
    assert f"a{announcement_id}-zh-yue-" in sent["loudspeaker", "spk-b"]["followed_by"][0]["audio_url"]


def test_a_draft_queues_no_speech(app, api, syntheses):
    import_roster(app)
    created = api("author").post("/api/v1/announcements", json={**NOTICE, "status": "draft"})
    assert created.status_code == 201, created.json
    run_jobs(app)
    assert syntheses == {}


def _media(app) -> Path:
    return Path(app.config["MEDIA_DIR"])
