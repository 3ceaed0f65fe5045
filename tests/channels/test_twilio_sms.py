"""The SMS channel and the shared Twilio helpers, with the real twilio library
talking HTTP to a local Twilio-compatible server."""
import socket

import pytest

from channels.base import ChannelError, Outgoing, StatusUpdate
from channels.twilio_common import RebasedHttpClient, valid_signature
from channels.twilio_sms import TwilioSmsChannel, parse_callback, parse_inbound
from messages.render import Rendered
from tests.fakes.twilio_server import STALL_NUMBER

SENDER = "+15005550006"
RESIDENT = "+8613912345678"
CALLBACK = "https://gov.example/hooks/twilio/sms/41"
TEXT = "【县人民政府】暴雨红色预警 请转移到安全地点。 详情: https://gov.example/a/7"


@pytest.fixture
def channel(twilio):
    channel = TwilioSmsChannel({**twilio.settings, "from_number": SENDER, "timeout": 2})
    yield channel
    channel.close()


def outgoing(address=RESIDENT, callback_url=CALLBACK):
    return Outgoing(delivery_id=41, announcement_id=7, address=address,
                    rendered=Rendered("sms", "zh", TEXT), callback_url=callback_url)


def test_send_posts_the_message_to_twilio(twilio, channel):
    receipt = channel.send(outgoing())

    request = twilio.requests[-1]
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.username == twilio.account_sid
    assert request.form.to_dict() == {"To": RESIDENT, "From": SENDER, "Body": TEXT,
                                      "StatusCallback": CALLBACK}
    assert receipt.status == "sent"
    assert receipt.provider_id.startswith("SM") and receipt.provider_id in twilio.messages


def test_messaging_service_replaces_the_from_number(twilio):
    channel = TwilioSmsChannel({**twilio.settings, "messaging_service_sid": "MG" + "1" * 32})
    channel.send(outgoing(callback_url=None))

    form = twilio.requests[-1].form
    assert form["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in form and "StatusCallback" not in form


def test_a_sender_is_required(twilio):
    with pytest.raises(ValueError, match="from_number"):
        TwilioSmsChannel(twilio.settings)


def test_rate_comes_from_settings(twilio):
    assert TwilioSmsChannel({**twilio.settings, "from_number": SENDER}).rate_per_second == 1.0
    configured = TwilioSmsChannel({**twilio.settings, "from_number": SENDER, "rate_per_second": 3})
    assert configured.rate_per_second == 3.0


@pytest.mark.parametrize("address, code, permanent, reason", [
    ("+8613800000001", "21211", True, "invalid phone number"),
    ("+8613800000002", "21610", True, "unsubscribed"),
    ("+8613800000003", "21614", True, "not a mobile number"),
    ("+8613800000004", "20429", False, "too many requests"),
    ("+8613800000005", "20500", False, "internal error"),
])
def test_twilio_errors_are_permanent_or_transient(channel, address, code, permanent, reason):
    with pytest.raises(ChannelError) as caught:
        channel.send(outgoing(address))

    assert caught.value.code == code
    assert caught.value.permanent is permanent
    assert reason in caught.value.message and "Twilio:" in caught.value.message


def test_wrong_credentials_are_transient(twilio):
    channel = TwilioSmsChannel({**twilio.settings, "auth_token": "wrong", "from_number": SENDER})
    with pytest.raises(ChannelError) as caught:
        channel.send(outgoing())
    assert (caught.value.code, caught.value.permanent) == ("20003", False)


def test_a_stalled_request_times_out_as_transient(twilio):
    channel = TwilioSmsChannel({**twilio.settings, "from_number": SENDER, "timeout": 0.3})
    with pytest.raises(ChannelError) as caught:
        channel.send(outgoing(STALL_NUMBER))
    assert (caught.value.code, caught.value.permanent) == ("timeout", False)


def test_an_unreachable_api_is_transient():
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    channel = TwilioSmsChannel({"account_sid": "AC1", "auth_token": "t", "api_base": closed,
                                "from_number": SENDER})
    with pytest.raises(ChannelError) as caught:
        channel.send(outgoing())
    assert (caught.value.code, caught.value.permanent) == ("connect", False)


def test_regional_twilio_hosts_are_rebased_too(twilio):
    client = RebasedHttpClient(twilio.url, timeout=2)
    response = client.request(
        "POST", f"https://api.dublin.ie1.twilio.com/2010-04-01/Accounts/{twilio.account_sid}"
        "/Messages.json", data={"To": RESIDENT, "From": SENDER, "Body": "hi"},
        auth=(twilio.account_sid, twilio.auth_token))
    assert response.status_code == 201


@pytest.mark.parametrize("status, error_code, expected", [
    ("queued", None, ("sent", None, True)),
    ("sending", None, ("sent", None, True)),
    ("sent", None, ("sent", None, True)),
    ("delivered", None, ("delivered", None, True)),
    ("undelivered", 30003, ("failed", "[30003] handset unreachable (off or out of coverage)", False)),
    ("undelivered", 30008, ("failed", "[30008] unknown delivery error", False)),
    ("failed", 30006, ("failed", "[30006] landline or unreachable carrier", True)),
    ("undelivered", 30005, ("failed", "[30005] unknown or inactive number", True)),
    ("failed", 39999, ("failed", "[39999] Twilio error 39999", False)),  # unknown: transient
    ("failed", None, ("failed", "failed, Twilio gave no reason", False)),
    ("undelivered", None, ("failed", "undelivered, Twilio gave no reason", False)),
    ("canceled", None, ("failed", "the message was canceled before it was sent", False)),
    ("partially_delivered", None, ("delivered", None, True)),
])
def test_status_callbacks_become_ledger_updates(twilio, channel, status, error_code, expected):
    sid = channel.send(outgoing()).provider_id
    callback = twilio.status_callback(sid, status, error_code=error_code)

    update = parse_callback(callback.params)

    assert (update.status, update.error, update.permanent) == expected
    assert update.provider_id == sid


def test_a_callback_is_parsed_without_a_client():
    form = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert parse_callback(form) == StatusUpdate(
        "failed", provider_id="SM1", error="[30003] handset unreachable (off or out of coverage)",
        permanent=False, extra={"error_code": 30003, "twilio_status": "undelivered"})


def test_statuses_that_mean_nothing_for_the_ledger_are_ignored():
    assert parse_callback({"MessageSid": "SM1", "MessageStatus": "received"}) is None


@pytest.mark.parametrize("body, intent", [
    ("1", "confirm"), (" 1 ", "confirm"), ("１", "confirm"), ("1。", "confirm"),
    ("TD", "opt_out"), ("td", "opt_out"), ("ＴＤ", "opt_out"), (" 退订 ", "opt_out"),
    ("STOP", "opt_out"), ("Stop.", "opt_out"), ("unsubscribe", "opt_out"),
    ("2", "other"), ("11", "other"), ("收到，谢谢", "other"), ("", "other"),
])
def test_inbound_replies(twilio, body, intent):
    callback = twilio.inbound_callback("https://gov.example/hooks/twilio/inbound", RESIDENT, body)
    assert parse_inbound(callback.params) == (RESIDENT, intent)


def test_signature_of_a_real_callback_is_accepted(twilio, channel):
    sid = channel.send(outgoing()).provider_id
    callback = twilio.status_callback(sid, "delivered")
    signature = callback.headers["X-Twilio-Signature"]

    assert valid_signature(twilio.auth_token, CALLBACK, callback.params, signature)
    assert not valid_signature("another-token", CALLBACK, callback.params, signature)
    assert not valid_signature(twilio.auth_token, CALLBACK, callback.params, None)


def test_signature_refuses_a_tampered_parameter_or_another_url(twilio, channel):
    sid = channel.send(outgoing()).provider_id
    callback = twilio.status_callback(sid, "failed", error_code=30003)
    signature = callback.headers["X-Twilio-Signature"]

    tampered = {**callback.params, "MessageStatus": "delivered"}
    assert not valid_signature(twilio.auth_token, CALLBACK, tampered, signature)
    assert not valid_signature(twilio.auth_token, "http://127.0.0.1:5000/hooks/twilio/sms/41",
                               callback.params, signature)
    assert not valid_signature(twilio.auth_token, CALLBACK.replace("41", "42"), callback.params,
                               signature)


def test_sends_share_one_kept_alive_connection_even_past_an_error(twilio, channel):
    for address in (RESIDENT, "+8613800000001", RESIDENT, RESIDENT):  # the second is refused
        try:
            channel.send(outgoing(address))
        except ChannelError:
            pass

    assert len(twilio.requests) == 4
    assert twilio.connections == 1


def test_a_send_after_twilio_dropped_the_connection_opens_a_new_one(twilio, channel):
    channel.send(outgoing())
    twilio.go_down()
    with pytest.raises(ChannelError, match="could not connect"):
        channel.send(outgoing())
    twilio.come_up()

    assert channel.send(outgoing()).status == "sent"
    assert twilio.connections == 2
