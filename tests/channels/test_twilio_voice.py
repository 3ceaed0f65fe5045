"""The voice channel with the real twilio library against a local Twilio-compatible
server, and its webhooks answered by a small stand-in for the gateway's route."""
import threading
import xml.etree.ElementTree as ET

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from channels.base import ChannelError, Outgoing, StatusUpdate
from channels.twilio_common import valid_signature
from channels.twilio_voice import (TwilioVoiceChannel, call_twiml, gather_twiml, gather_url,
                                   parse_callback, parse_gather)
from messages.phrases import phrase
from messages.render import Rendered
from tests.fakes.twilio_server import STALL_NUMBER

CALLER_ID = "+15005550006"
RESIDENT = "+8613912345678"
AUDIO = "https://gov.example/media/7-zh.wav"
SCRIPT = "县人民政府信息办通知：暴雨红色预警。请转移到安全地点。"
CALLBACK = "https://gov.example/hooks/twilio/voice/41"


@pytest.fixture
def channel(twilio):
    channel = TwilioVoiceChannel({**twilio.settings, "from_number": CALLER_ID, "timeout": 2})
    yield channel
    channel.close()


def outgoing(address=RESIDENT, audio_url=AUDIO, language="zh", callback_url=CALLBACK):
    rendered = Rendered("voice", language, SCRIPT, {"audio_url": audio_url})
    return Outgoing(delivery_id=41, announcement_id=7, address=address, rendered=rendered,
                    callback_url=callback_url)


def verbs(twiml):
    return [(element.tag, element.text, element.attrib)
            for element in ET.fromstring(twiml).iter() if element.tag != "Response"]


def test_call_request_carries_twiml_and_status_callback(twilio, channel):
    receipt = channel.send(outgoing())

    form = twilio.requests[-1].form
    assert twilio.requests[-1].path == f"/2010-04-01/Accounts/{twilio.account_sid}/Calls.json"
    assert (form["To"], form["From"], form["StatusCallback"]) == (RESIDENT, CALLER_ID, CALLBACK)
    assert form.getlist("StatusCallbackEvent") == ["answered", "completed"]
    assert (form["Timeout"], form["TimeLimit"]) == ("30", "900")
    assert receipt.status == "sent" and receipt.provider_id in twilio.calls

    play, gather, prompt = verbs(form["Twiml"])
    assert play == ("Play", AUDIO, {})
    assert gather[0] == "Gather" and gather[2] == {
        "numDigits": "1", "action": gather_url(CALLBACK, 1), "method": "POST", "timeout": "8",
        "actionOnEmptyResult": "true"}
    assert prompt == ("Say", phrase("zh", "call.prompt"),
                      {"language": "cmn-CN", "voice": "Polly.Zhiyu"})  # Polly's code for Zhiyu


@pytest.mark.parametrize("language, say_language", [("zh", "cmn-CN"), ("en", "en-US")])
def test_without_audio_twilio_speaks_the_script(twilio, channel, language, say_language):
    channel.send(outgoing(audio_url=None, language=language))

    first, gather, _ = verbs(twilio.requests[-1].form["Twiml"])
    assert first[:2] == ("Say", SCRIPT) and first[2]["language"] == say_language
    assert gather[0] == "Gather"


SHORT = "县人民政府信息办通知：暴雨红色预警。请注意：转移到安全地点。通知全文请看短信。"


def test_without_audio_twilio_says_the_short_script_within_its_limits(twilio, channel):
    long_script = "县人民政府信息办通知：暴雨红色预警。" + "预计今晚有特大暴雨，" * 200
    rendered = Rendered("voice", "zh", long_script, {"audio_url": None, "say_text": SHORT})
    channel.send(Outgoing(41, 7, RESIDENT, rendered, CALLBACK))  # the stand-in refuses > 4,000
    twiml = twilio.requests[-1].form["Twiml"]
    assert verbs(twiml)[0][:2] == ("Say", SHORT)
    # What the long script would have made is refused, as Twilio refuses it (32018).
    too_long = twiml.replace(SHORT, long_script * 2)
    with pytest.raises(TwilioRestException) as refused:
        channel.client.calls.create(to=RESIDENT, from_=CALLER_ID, twiml=too_long)
    assert refused.value.code == 32018


@pytest.mark.parametrize("text", ["警" * 1500, "R&D " * 1200, "通知" * 3000])
def test_the_say_text_is_cut_to_twilios_limits(text):
    twiml = call_twiml(None, text, "zh", gather_url(CALLBACK, 1), 8)
    said = verbs(twiml)[0][1]
    assert len(twiml) <= 4000 and len(said.encode("utf-8")) <= 3000
    assert text.startswith(said) and len(said) > 500


def test_a_call_needs_a_callback_url(channel):
    with pytest.raises(ValueError):
        channel.send(outgoing(callback_url=None))


@pytest.mark.parametrize("address, code, permanent", [
    ("+8613800000006", "21215", True),
    ("+8613800000001", "21211", True),
    ("+8613800000004", "20429", False),
    ("+8613800000005", "20500", False),
])
def test_call_errors_are_permanent_or_transient(channel, address, code, permanent):
    with pytest.raises(ChannelError) as caught:
        channel.send(outgoing(address))
    assert (caught.value.code, caught.value.permanent) == (code, permanent)


def test_a_stalled_call_request_times_out_as_transient(twilio):
    channel = TwilioVoiceChannel({**twilio.settings, "from_number": CALLER_ID, "timeout": 0.3})
    with pytest.raises(ChannelError) as caught:
        channel.send(outgoing(STALL_NUMBER))
    assert (caught.value.code, caught.value.permanent) == ("timeout", False)


def test_gather_url_sets_event_and_attempt_and_keeps_other_parameters():
    assert gather_url(CALLBACK, 1) == CALLBACK + "?event=gather&attempt=1"
    assert gather_url(CALLBACK + "?t=abc&event=gather&attempt=1", 2) == \
        CALLBACK + "?t=abc&event=gather&attempt=2"


def test_pressing_1_thanks_and_hangs_up():
    twiml = gather_twiml("1", AUDIO, SCRIPT, "zh", CALLBACK, attempt=1)
    assert [verb[:2] for verb in verbs(twiml)] == [("Say", phrase("zh", "call.thanks")),
                                                    ("Hangup", None)]


@pytest.mark.parametrize("digit, attempt, next_attempt", [
    ("2", 2, 1),     # a replay on request starts the count of unanswered plays again
    ("", 1, 2),      # no key after the first play: once more
    ("7", 1, 2),     # any other key counts as none
])
def test_replays_play_the_notice_and_ask_again(digit, attempt, next_attempt):
    play, gather, _ = verbs(gather_twiml(digit, AUDIO, SCRIPT, "zh", CALLBACK, attempt))
    assert play[:2] == ("Play", AUDIO)
    assert gather[2]["action"] == gather_url(CALLBACK, next_attempt)


def test_replays_wait_the_gather_seconds_they_are_given():
    for digit, attempt in (("2", 2), ("", 1)):
        _, gather, _ = verbs(gather_twiml(digit, AUDIO, SCRIPT, "zh", CALLBACK, attempt, 15))
        assert gather[2]["timeout"] == "15"


def test_no_key_after_the_replay_hangs_up():
    twiml = gather_twiml(None, AUDIO, SCRIPT, "en", CALLBACK, attempt=2)
    assert [verb[:2] for verb in verbs(twiml)] == [("Say", "Goodbye."), ("Hangup", None)]


@pytest.mark.parametrize("call_status, expected", [
    ("in-progress", ("sent", True, "answered")),
    ("completed", ("delivered", True, "completed-not-confirmed")),
    ("no-answer", ("failed", False, "no-answer")),
    ("busy", ("failed", False, "busy")),
    ("failed", ("failed", False, "failed")),  # no ErrorCode: transient, called again
    ("canceled", ("failed", True, "canceled")),
])
def test_call_status_callbacks_become_ledger_updates(twilio, channel, call_status, expected):
    sid = channel.send(outgoing()).provider_id
    update = parse_callback(twilio.status_callback(sid, call_status).params)

    assert (update.status, update.permanent, update.extra["outcome"]) == expected
    assert update.provider_id == sid


def test_completed_call_reports_its_duration(twilio, channel):
    sid = channel.send(outgoing()).provider_id
    update = parse_callback(twilio.status_callback(sid, "completed", duration=75).params)
    assert update.extra["duration"] == "75"


def test_a_call_callback_is_parsed_without_a_client():
    form = {"CallSid": "CA1", "CallStatus": "busy", "CallDuration": "0"}
    assert parse_callback(form) == StatusUpdate(
        "failed", provider_id="CA1", error="busy", permanent=False,
        extra={"outcome": "busy", "duration": "0"})
    failed = parse_callback({"CallSid": "CA1", "CallStatus": "failed", "ErrorCode": "13224"})
    assert (failed.error, failed.permanent, failed.address_invalid) == (
        "[13224] invalid phone number", True, True)
    for transient in ("20429", "30003"):
        failed = parse_callback({"CallSid": "CA1", "CallStatus": "failed", "ErrorCode": transient})
        assert (failed.status, failed.permanent) == ("failed", False)


def test_unknown_call_status_is_ignored():
    assert parse_callback({"CallSid": "CA1", "CallStatus": "weird"}) is None


class GatewayStandIn:
    """What the gateway's voice webhook does with these functions, over real HTTP."""

    def __init__(self, auth_token):
        self.auth_token = auth_token
        self.updates = []
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/twilio/voice/41"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def __call__(self, environ, start_response):
        request = Request(environ)
        signature = request.headers.get("X-Twilio-Signature")
        if not valid_signature(self.auth_token, request.url, request.form, signature):
            return Response("forged", status=403)(environ, start_response)
        if request.args.get("event") == "gather":
            self.updates.append(parse_gather(request.form))
            twiml = gather_twiml(request.form.get("Digits"), AUDIO, SCRIPT, "zh", request.url,
                                 int(request.args["attempt"]))
            return Response(twiml, content_type="text/xml")(environ, start_response)
        self.updates.append(parse_callback(request.form))
        return Response("")(environ, start_response)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(twilio):
    stand_in = GatewayStandIn(twilio.auth_token)
    yield stand_in
    stand_in.stop()


def test_pressing_1_on_a_call_confirms_it(twilio, channel, gateway):
    sid = channel.send(outgoing(callback_url=gateway.url)).provider_id

    response = twilio.press(sid, "1")

    assert response.status_code == 200
    confirmation = gateway.updates[-1]
    assert (confirmation.status, confirmation.provider_id) == ("confirmed", sid)
    assert confirmation.extra["outcome"] == "completed-and-confirmed"
    assert ("Hangup", None, {}) in verbs(twilio.twiml[sid])


def test_silence_replays_once_then_hangs_up_and_the_call_completes(twilio, channel, gateway):
    sid = channel.send(outgoing(callback_url=gateway.url)).provider_id

    twilio.press(sid, "")
    assert verbs(twilio.twiml[sid])[0][:2] == ("Play", AUDIO)
    twilio.press(sid, "")
    assert ("Hangup", None, {}) in verbs(twilio.twiml[sid])
    twilio.send_status(sid, "completed", duration=95)

    assert gateway.updates[:2] == [None, None]
    assert gateway.updates[-1].status == "delivered"


def test_parse_gather_confirms_only_on_1(twilio, channel):
    sid = channel.send(outgoing()).provider_id
    assert parse_gather(twilio.gather_callback(sid, "1").params).status == "confirmed"
    assert parse_gather(twilio.gather_callback(sid, "2").params) is None
    assert parse_gather(twilio.gather_callback(sid, "").params) is None


def test_a_forged_gather_is_refused(twilio, channel, gateway):
    sid = channel.send(outgoing(callback_url=gateway.url)).provider_id
    callback = twilio.gather_callback(sid, "1")

    forged = requests.post(callback.url, data={**callback.params, "CallSid": "CA" + "f" * 32},
                           headers=callback.headers, timeout=5)
    assert forged.status_code == 403
    assert gateway.updates == []
