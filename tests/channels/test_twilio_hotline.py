"""The hotline's TwiML (channels/twilio_hotline.py), read back as Twilio reads it."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from channels.twilio_hotline import Ask, Spoken, pressed, twiml
from channels.twilio_voice import SAY_UTF8_BYTES

ACTION = "https://gw.example/webhooks/twilio/hotline?step=menu&area=450702"


def test_a_recording_and_text_are_heard_inside_the_question_that_waits_for_keys():
    root = ET.fromstring(twiml([Spoken("欢迎。", "zh")],
                               ask=Ask([Spoken("通知", "zh", "https://gw/media/a1.wav"),
                                        Spoken("请按1。", "zh")], ACTION, digits=2, seconds=8)))
    assert [child.tag for child in root] == ["Say", "Gather"]
    assert root[0].get("voice") == "Polly.Zhiyu" and root[0].text == "欢迎。"
    gather = root.find("Gather")
    assert (gather.get("action"), gather.get("numDigits"), gather.get("finishOnKey"),
            gather.get("actionOnEmptyResult"), gather.get("timeout")) == \
        (ACTION, "2", "#", "true", "8")
    # Inside the question: a key pressed during the notice answers at once.
    assert [(child.tag, child.text) for child in gather] == [
        ("Play", "https://gw/media/a1.wav"), ("Say", "请按1。")]


def test_a_transfer_dials_the_number_and_the_end_hangs_up():
    dial = ET.fromstring(twiml([Spoken("Connecting.", "en")], dial="+867772825000"))
    assert [child.tag for child in dial] == ["Say", "Dial", "Hangup"]
    assert dial.find("Dial").text == "+867772825000" and dial[0].get("voice") == "Polly.Joanna"
    assert [child.tag for child in ET.fromstring(twiml([Spoken("再见。", "zh")]))] == ["Say", "Hangup"]


def test_text_too_long_for_twilio_speech_is_cut_at_a_whole_character():
    said = ET.fromstring(twiml([Spoken("长" * 2000, "zh")])).find("Say").text
    assert len(said.encode("utf-8")) <= SAY_UTF8_BYTES and said == "长" * (SAY_UTF8_BYTES // 3)


def test_pressed_keys_lose_the_hash_that_ended_them():
    assert pressed({"Digits": " 12# "}) == "12" and pressed({"Digits": "#"}) == ""
    assert pressed({}) == "" and pressed({"Digits": "*"}) == "*"
