"""`flask --app wsgi doctor`: says what is wrong and what to do, exits 1 then; 0 on a sound
installation."""
from __future__ import annotations

import os

from rq.scheduler import RQScheduler

from gateway.delivery import queues, workers
from tests.drills.harness import wait_until

GOOD_SID = "AC" + "0123456789abcdef" * 2
GOOD_TOKEN = "fedcba9876543210" * 2


def doctor(app):
    return app.test_cli_runner().invoke(args=["doctor"])


def test_a_sound_installation_has_nothing_to_fix(make_app, tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'instance' / 'tongbao.db'}",
                   TWILIO_ACCOUNT_SID=GOOD_SID, TWILIO_AUTH_TOKEN=GOOD_TOKEN,
                   TWILIO_FROM_NUMBER="+12025550123", STALE_SENDING_SECONDS=2)
    heartbeat = workers.Heartbeat(app, queues.QUEUE_NAMES)  # a worker's, on every queue
    heartbeat.start()
    with app.app_context():
        scheduler = RQScheduler([queues.queue(name) for name in queues.QUEUE_NAMES],
                                connection=queues.connection())
        scheduler.acquire_locks()
        wait_until(lambda: queues.worker_alive(workers.process_name()), 5, "the first beat")
    try:
        result = doctor(app)
    finally:
        heartbeat.stop()
        scheduler.release_locks()
    assert result.exit_code == 0, result.output
    assert "FIX" not in result.output
    assert "ok    speech       zh: voice cmn-latn-pinyin" in result.output
    assert "ok    speech       yue: voice yue" in result.output  # Cantonese, reading Chinese
    assert "sms: twilio_sms, voice: twilio_voice, wechat: outbox" in result.output
    assert result.output.rstrip().endswith("nothing to fix")


def test_each_problem_is_named_with_what_to_do(make_app, tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'instance' / 'tongbao.db'}",
                   TWILIO_ACCOUNT_SID="AC123", TWILIO_AUTH_TOKEN=GOOD_TOKEN,
                   WECHAT_APP_ID="wx0123456789abcdef",
                   PUBLIC_BASE_URL="http://tongbao.example.gov.cn",
                   MQTT_URL="mqtt://tongbao-gateway:pw@127.0.0.1:1", SECRET_KEY="short")
    roster = tmp_path / "instance" / "roster-copy.csv"
    roster.write_text("name,phone\n")
    os.chmod(roster, 0o644)
    result = doctor(app)
    assert result.exit_code == 1
    lines = result.output.splitlines()

    def finding(start: str) -> str:
        [index] = [i for i, line in enumerate(lines) if line.startswith(start)]
        return lines[index + 1].strip()

    assert finding("FIX   providers    Twilio is partly configured").startswith("-> set TWILIO_")
    assert finding("FIX   providers    TWILIO_ACCOUNT_SID does not look right").endswith(
        "AC followed by 32 hexadecimal characters")
    assert finding("FIX   providers    WeChat is partly configured")
    assert finding("FIX   configuration PUBLIC_BASE_URL is http:// on a public address")
    assert finding("FIX   configuration SECRET_KEY is shorter than 32 characters")
    assert finding(f"FIX   files        1 file(s) others may read, e.g. {roster}") == \
        f"-> chmod -R go-rwx {tmp_path / 'instance'}"
    assert finding("FIX   broker       unreachable (ConnectionRefusedError)")
    assert finding("FIX   signing_key  missing").startswith("-> run `flask --app wsgi speakers key`")
    assert "pw" not in result.output.replace("pw@", "")  # the broker password never shown
    assert "thing(s) to fix" in result.output


def test_a_signing_key_kept_elsewhere_is_checked_alone_not_its_folder(make_app, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o755)
    (keys / "unrelated.txt").write_text("someone else's")  # not the gateway's: not looked at
    key = keys / "signing.pem"
    key.write_text("not a key")
    os.chmod(key, 0o644)
    app = make_app(f"sqlite:///{tmp_path / 'instance' / 'tongbao.db'}", SIGNING_KEY_PATH=str(key))
    output = doctor(app).output
    assert f"FIX   files        1 file(s) others may read, e.g. {key} " in output
    assert f"-> chmod -R go-rwx {keys}" in output


def test_a_configured_voice_espeak_ng_lacks_is_named(make_app, tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'instance' / 'tongbao.db'}",
                   SPEECH_VOICES={"zh": "cmn-latn-pinyin", "en": "en-us", "za": "zhuang-none"})
    result = doctor(app)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    [index] = [i for i, line in enumerate(lines)
               if line.startswith("FIX   speech       za: espeak-ng has no voice zhuang-none")]
    assert "SPEECH_VOICES" in lines[index + 1]


def test_start_up_warns_of_a_voice_espeak_ng_lacks(make_app, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        make_app(f"sqlite:///{tmp_path / 'instance' / 'tongbao.db'}",
                 SPEECH_VOICES={"zh": "cmn-latn-pinyin", "za": "zhuang-none"})
    assert "espeak-ng has no voice 'zhuang-none' (for za)" in caplog.text
    assert "cmn-latn-pinyin" not in caplog.text
