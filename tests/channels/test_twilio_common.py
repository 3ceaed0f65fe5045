"""The Twilio error table: each code's outcome, as a send error from the Twilio
stand-in and as the ErrorCode of a status callback, for SMS and for calls."""
import pytest

from channels.twilio_common import ERRORS, classify
from channels.twilio_sms import TwilioSmsChannel
from channels.twilio_sms import parse_callback as parse_sms_callback
from channels.twilio_voice import TwilioVoiceChannel
from channels.twilio_voice import parse_callback as parse_call_callback
from channels.base import ChannelError, Outgoing
from messages.render import Rendered
from tests.fakes.twilio_server import FakeTwilio

SENDER = "+15005550006"
NUMBER = "+8613911112222"
CALLBACK = "https://gov.example/hooks/twilio/41"

RETRY, CHANNEL, ADDRESS = "retry", "fail this channel", "number invalid"
#: Written out here, not read from the table: what each code must do.
#: (code, outcome, seconds the whole channel pauses or None)
EXPECTED = [
    (21211, ADDRESS, None), (21217, ADDRESS, None), (21401, ADDRESS, None),
    (13223, ADDRESS, None), (13224, ADDRESS, None), (30005, ADDRESS, None),
    (21614, CHANNEL, None), (30006, CHANNEL, None), (21610, CHANNEL, None),
    (21612, CHANNEL, None), (21408, CHANNEL, None), (21215, CHANNEL, None),
    (13225, CHANNEL, None), (13227, CHANNEL, None), (30004, CHANNEL, None),
    (30007, CHANNEL, None), (32018, CHANNEL, None),
    (30001, RETRY, None), (30003, RETRY, None), (30008, RETRY, None), (30009, RETRY, None),
    (20429, RETRY, None), (20500, RETRY, None), (20503, RETRY, None), (20003, RETRY, None),
    (30017, RETRY, 30), (30022, RETRY, 60), (30023, RETRY, 3600),
]


def outcome_of(error) -> str:
    """The outcome a ChannelError or StatusUpdate says."""
    if error.address_invalid:
        assert error.permanent
        return ADDRESS
    return CHANNEL if error.permanent else RETRY


def test_every_row_of_the_table_is_checked_here():
    assert sorted(ERRORS) == sorted(code for code, _, _ in EXPECTED)


@pytest.mark.parametrize("code, outcome, pause", EXPECTED)
@pytest.mark.parametrize("channel_class", [TwilioSmsChannel, TwilioVoiceChannel])
def test_a_send_refused_with_the_code(channel_class, code, outcome, pause):
    status = 429 if code == 20429 else 500 if code in (20500, 20503) else 400
    with FakeTwilio(errors={NUMBER: (status, code, f"error {code}")}) as twilio:
        channel = channel_class({**twilio.settings, "from_number": SENDER, "timeout": 2})
        rendered = Rendered(channel.name, "zh", "暴雨红色预警。", {"audio_url": None})
        with pytest.raises(ChannelError) as caught:
            channel.send(Outgoing(41, 7, NUMBER, rendered, CALLBACK))
        channel.close()
    error = caught.value
    assert error.code == str(code)
    assert outcome_of(error) == outcome
    assert (error.pauses_channel, error.retry_after) == (pause is not None, pause)


@pytest.mark.parametrize("code, outcome, pause", EXPECTED)
def test_a_message_undelivered_with_the_code(code, outcome, pause):
    update = parse_sms_callback({"MessageSid": "SM1", "MessageStatus": "undelivered",
                                 "ErrorCode": str(code)})
    assert update.status == "failed" and update.error.startswith(f"[{code}] ")
    assert outcome_of(update) == outcome
    assert (update.pauses_channel, update.retry_after) == (pause is not None, pause)


@pytest.mark.parametrize("code, outcome, pause", EXPECTED)
def test_a_call_failed_with_the_code(code, outcome, pause):
    update = parse_call_callback({"CallSid": "CA1", "CallStatus": "failed",
                                  "ErrorCode": str(code)})
    assert update.status == "failed" and outcome_of(update) == outcome


@pytest.mark.parametrize("code", [None, 12345, 30999, 21999])
def test_an_unknown_code_is_transient(code):
    assert classify(code).outcome == "retry"
    update = parse_call_callback({"CallSid": "CA1", "CallStatus": "failed",
                                  **({"ErrorCode": str(code)} if code else {})})
    assert outcome_of(update) == RETRY


def test_an_unknown_code_refusing_a_send_is_transient():
    with FakeTwilio(errors={NUMBER: (400, 21999, "something new")}) as twilio:
        channel = TwilioSmsChannel({**twilio.settings, "from_number": SENDER, "timeout": 2})
        with pytest.raises(ChannelError) as caught:
            channel.send(Outgoing(41, 7, NUMBER, Rendered("sms", "zh", "预警"), CALLBACK))
        channel.close()
    assert (caught.value.code, outcome_of(caught.value)) == ("21999", RETRY)
