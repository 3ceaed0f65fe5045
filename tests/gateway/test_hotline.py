"""The notice hotline (#21, item 1), driven as Twilio drives it: signed requests (the twilio
library's RequestValidator) to the number's voice webhook, then to each <Gather>'s action URL
with the keys pressed, for a caller on the roster and one who is not. The notices go out
first through real rq jobs and the outbox, so the calls' speech files are really made."""
from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from twilio.request_validator import RequestValidator

from gateway.config import ConfigError, from_env
from gateway.store import hotline, roster
from gateway.store.schema import announcements, areas, deliveries, hotline_calls
from messages.render_types import RenderContext
from messages.withdrawal import said_time
from tests.conftest import run_jobs
from tests.gateway.console.conftest import login, page
from tests.gateway.conftest import DISTRICT, RESIDENTS, VILLAGE_A, person
from tests.gateway.test_fanout import publish

pytestmark = pytest.mark.integration
PUBLIC = "https://tongbao.example.gov.cn/gw"  # behind a proxy: signatures use the public URL
HOTLINE = f"{PUBLIC}/webhooks/twilio/hotline"
TOKEN = "hotline-auth-token"
DUTY = "+867772825000"
BLIND = RESIDENTS["blind"][0]  # VILLAGE_A, called and texted by the policy
TEXTED = RESIDENTS["young sms only"][0]  # VILLAGE_A, texted only: no speech made for them
STRANGER = "+8613999990000"


@pytest.fixture
def app(make_app, database_url):
    return make_app(database_url, PUBLIC_BASE_URL=PUBLIC, TWILIO_AUTH_TOKEN=TOKEN,
                    HOTLINE_DUTY_NUMBER=DUTY)


@dataclass
class Heard:
    """One TwiML answer, read as Twilio would."""

    said: list[str]
    played: list[str]
    action: str | None
    digits: int | None
    dial: str | None
    hangup: bool

    @property
    def text(self) -> str:
        return " ".join(self.said)


def read(response) -> Heard:
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.data)
    gather = root.find("Gather")
    return Heard([say.text for say in root.iter("Say")],
                 [play.text for play in root.iter("Play")],
                 gather.get("action") if gather is not None else None,
                 int(gather.get("numDigits")) if gather is not None else None,
                 root.find("Dial").text if root.find("Dial") is not None else None,
                 root.find("Hangup") is not None)


class Call:
    """One call to the hotline from ``caller``: ``start`` then ``press`` on the last <Gather>."""

    def __init__(self, app, caller: str):
        self.client = app.test_client()
        self.caller = caller
        self.sid = "CA" + uuid.uuid4().hex
        self.last: Heard | None = None

    def post(self, url: str, digits: str | None = None, *, token: str = TOKEN):
        params = {"AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01", "CallSid": self.sid,
                  "CallStatus": "in-progress", "Direction": "inbound", "From": self.caller,
                  "To": "+867772812345"}
        if digits is not None:
            params.update(Digits=digits, FinishedOnKey="")
        signature = RequestValidator(token).compute_signature(url, params)
        return self.client.post(url.removeprefix(PUBLIC), data=params,
                                headers={"X-Twilio-Signature": signature})

    def start(self) -> Heard:
        self.last = read(self.post(HOTLINE))
        return self.last

    def press(self, digits: str) -> Heard:
        assert self.last.action, "the call is not asking for a key"
        self.last = read(self.post(self.last.action, digits))
        return self.last


@pytest.fixture
def notices(app, api):
    """A severe notice for the district, then a newer moderate one for VILLAGE_A only."""
    severe = publish(api, headline="台风橙色预警", body="台风今晚登陆。", severity="severe",
                     channels=["sms", "voice"], areas=[DISTRICT])
    moderate = publish(api, headline="停水通知", body="沙埠村明天停水。", severity="moderate",
                       channels=["sms", "voice"], areas=[VILLAGE_A])
    run_jobs(app)
    return severe, moderate


def listeners(api, announcement_id: int) -> int:
    return api("author").get(f"/api/v1/announcements/{announcement_id}").json["hotline_listeners"]


def delivery_status(app, announcement_id: int, phone: str, channel: str) -> str:
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(deliveries.c.status).where(
            deliveries.c.announcement_id == announcement_id, deliveries.c.channel == channel,
            deliveries.c.address == phone)).scalar_one()


def test_a_roster_caller_hears_their_notices_most_severe_first_and_confirms(app, api, notices):
    severe, moderate = notices
    call = Call(app, BLIND.phone)
    heard = call.start()
    assert "通知热线" in heard.text and "沙埠村现有2条生效的通知" in heard.text
    assert "第1条，共2条" in heard.text
    # The district's severe notice first although it is older, played from the calls' recording.
    assert len(heard.played) == 1 and f"/media/a{severe}-zh-" in heard.played[0]
    assert heard.played[0].startswith(f"{PUBLIC}/media/")
    assert "确认收到请按1" in heard.said[-1] and "转接值班人员，请按0" in heard.said[-1]
    assert app.test_client().get(heard.played[0].removeprefix(PUBLIC)).status_code == 200

    again = call.press("2")
    assert again.played == heard.played and "第1条" in again.text
    assert delivery_status(app, severe, BLIND.phone, "voice") != "confirmed"

    confirmed = call.press("1")
    assert "您已确认收到" in confirmed.text and "第2条，共2条" in confirmed.text
    assert f"/media/a{moderate}-zh-" in confirmed.played[0]
    # Recorded through the ledger on the resident's call, as a keypress on the call would be.
    assert delivery_status(app, severe, BLIND.phone, "voice") == "confirmed"
    assert delivery_status(app, severe, BLIND.phone, "sms") != "confirmed"
    status = api("author").get(f"/api/v1/announcements/{severe}").json
    assert status["confirmed_residents"] == 1 and status["deliveries"]["voice"]["confirmed"] == 1

    last = call.press("3")
    assert "这是最后一条通知" in last.text and not last.played and last.action
    goodbye = call.press("1")  # confirming the last notice ends the call
    assert "您已确认收到" in goodbye.text and goodbye.hangup and goodbye.action is None
    assert delivery_status(app, moderate, BLIND.phone, "voice") == "confirmed"
    # Heard twice and confirmed, counted once per notice for the call.
    assert listeners(api, severe) == 1 and listeners(api, moderate) == 1
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(hotline_calls).order_by(hotline_calls.c.id)).all()
    assert [(r.announcement_id, r.resident_id is not None, r.confirmed_at is not None)
            for r in rows] == [(severe, True, True), (moderate, True, True)]

    Call(app, BLIND.phone).start()  # another call counts again
    assert listeners(api, severe) == 2
    console = app.test_client()
    login(console, "author")
    html = page(console.get(f"/announcements/{severe}"))
    assert '通知热线收听： <strong id="hotline-listeners">2</strong>' in html
    assert console.get(f"/announcements/{severe}/progress.json").json["hotline_listeners"] == 2


def test_a_notice_with_no_recording_yet_is_read_by_twilio(app, api):
    """Texted only: no call or loudspeaker made the speech, and the hotline makes none."""
    only_sms = publish(api, headline="道路封闭", body="省道S211今晚封闭。", channels=["sms"],
                       areas=[VILLAGE_A])
    run_jobs(app)
    heard = Call(app, TEXTED.phone).start()
    assert not heard.played and "道路封闭。 省道S二幺幺今晚封闭。" in heard.said[1]  # as spoken
    assert not list(Path(app.config["MEDIA_DIR"]).glob(f"a{only_sms}-*.wav"))


def test_an_unknown_caller_chooses_the_area_from_the_registry(app, api, notices):
    severe, moderate = notices
    call = Call(app, STRANGER)
    menu = call.start()
    assert "通知热线" in menu.text and "收听钦州市全境的通知，请按1" in menu.text
    assert "钦南区，请按2" in menu.text and "钦北区，请按3" in menu.text and menu.digits == 1
    district = call.press("2")
    assert "收听钦南区全境的通知，请按1" in district.text and "沙埠镇，请按2" in district.text
    town = call.press("2")
    assert "沙埠村，请按2" in town.text and "新屋村，请按3" in town.text
    village_b = call.press("3")
    # Only the district's notice covers VILLAGE_B; an unknown caller is not offered 1.
    assert f"/media/a{severe}-zh-" in village_b.played[0] and len(village_b.played) == 1
    assert "第1条" not in village_b.text and "确认收到" not in village_b.said[-1]
    assert "重听请按2" in village_b.said[-1]
    refused = call.press("1")
    assert "您按的键无效" in refused.text and not refused.played and refused.action
    assert call.press("2").played == village_b.played
    assert "这是最后一条通知" in call.press("3").text
    duty = call.press("0")
    assert duty.dial == DUTY and "正在为您转接值班人员" in duty.text and duty.action is None
    assert listeners(api, severe) == 1 and listeners(api, moderate) == 0
    with app.extensions["engine"].connect() as conn:
        row = conn.execute(select(hotline_calls)).one()
    assert (row.resident_id, row.area_code, row.confirmed_at) == (None, "450702100202", None)
    # Nothing confirmed for anyone by the stranger's 1.
    assert api("author").get(f"/api/v1/announcements/{severe}").json["confirmed_residents"] == 0


def test_the_whole_district_and_no_notice_with_the_time_of_the_last(app, api, notices):
    severe, _ = notices
    call = Call(app, STRANGER)
    call.start()
    call.press("2")
    whole = call.press("1")  # all of 钦南区: the district's notice, not the village's
    assert f"/media/a{severe}-zh-" in whole.played[0] and len(whole.played) == 1

    withdrawn = publish(api, headline="大风蓝色预警", body="大寺镇有大风。", channels=["sms"],
                        areas=["450703"])
    assert api("author").post(f"/api/v1/announcements/{withdrawn}/cancel").status_code == 200
    run_jobs(app)
    with app.extensions["engine"].connect() as conn:
        last = conn.execute(select(func.max(announcements.c.sent)).where(
            announcements.c.areas.like('%450703%'))).scalar_one()
    call = Call(app, STRANGER)
    call.start()
    call.press("3")  # 钦北区
    none = call.press("1")
    assert "钦北区现在没有生效的通知" in none.text
    assert f"最近一条通知发布于{said_time('zh', last, RenderContext())}" in none.text
    assert "转接值班人员，请按0" in none.said[-1]
    assert call.press("0").dial == DUTY

    never = Call(app, STRANGER)
    never.start()
    nothing = never.press("1")  # all of 钦州市: nothing ever went to the whole prefecture
    assert "钦州市还没有发布过通知" in nothing.text


@pytest.mark.parametrize("keys", ["*", "99", "7", "abc", "**", "1#2"])
def test_bad_keys_reprompt_the_menu(app, county, keys):
    call = Call(app, STRANGER)
    menu = call.start()
    again = call.press(keys)
    assert "您按的键无效" in again.text and again.action == menu.action
    assert "钦南区，请按2" in again.text


def test_silence_asks_again_then_says_goodbye(app, api, notices):
    call = Call(app, BLIND.phone)
    call.start()
    asked = call.press("")
    assert not asked.played and "重听请按2" in asked.said[-1] and asked.action
    goodbye = call.press("")
    assert "再见" in goodbye.text and goodbye.hangup and goodbye.action is None


def test_a_state_that_does_not_hold_starts_the_call_over(app, api, notices):
    call = Call(app, STRANGER)
    for query in ("step=menu&area=12", "step=notice&area=450702100201&notice=x",
                  "step=notice&area=&notice=1", "step=talk", "step=menu&unanswered=-1",
                  f"step=notice&area=450702100201&notice={2**40}"):
        heard = read(call.post(f"{HOTLINE}?{query}", "2"))
        assert "通知热线" in heard.text and "钦南区，请按2" in heard.text, query
    # A notice that ended meanwhile (or never was) replays the area's notices from the first.
    heard = read(call.post(f"{HOTLINE}?step=notice&area=450702100201&notice=999999", "3"))
    assert f"/media/a{notices[0]}-zh-" in heard.played[0] and "第1条，共2条" in heard.text


def test_forged_requests_get_403_and_change_nothing(app, api, notices):
    call = Call(app, BLIND.phone)
    assert call.post(HOTLINE, token="not-the-token").status_code == 403
    unsigned = app.test_client().post("/webhooks/twilio/hotline", data={"From": BLIND.phone})
    assert unsigned.status_code == 403
    heard = call.start()
    tampered = heard.action.replace("area=450702100201", "area=450702100202")
    signature = RequestValidator(TOKEN).compute_signature(heard.action, {"Digits": "1"})
    forged = app.test_client().post(tampered.removeprefix(PUBLIC), data={"Digits": "1"},
                                    headers={"X-Twilio-Signature": signature})
    assert forged.status_code == 403
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(hotline_calls)).scalar_one() == 1
        assert "confirmed" not in set(conn.execute(select(deliveries.c.status)).scalars())


def test_without_a_duty_number_no_key_0(make_app, database_url, api):
    app = make_app(database_url, PUBLIC_BASE_URL=PUBLIC, TWILIO_AUTH_TOKEN=TOKEN)
    call = Call(app, STRANGER)
    menu = call.start()
    assert "请按0" not in menu.text
    refused = call.press("0")
    assert "您按的键无效" in refused.text and refused.dial is None


def test_an_english_reader_hears_english_prompts(app, api, county):
    with app.extensions["engine"].begin() as conn:
        roster.insert_residents(conn, [person("Ann", VILLAGE_A, phone="+8613800000041",
                                              language="en")])
    heard = Call(app, "+8613800000041").start()
    assert "This is the notice hotline of" in heard.text
    assert "No notice has been issued for 沙埠村 yet." in heard.text
    assert "To speak to the duty officer, press 0." in heard.said[-1]


def test_the_time_said_is_beijing_time():
    assert said_time("zh", datetime(2026, 12, 1, 22, 5, tzinfo=timezone.utc),
                     RenderContext()) == "2026年12月2日06:05"


def test_the_duty_number_setting_takes_a_telephone_number_only():
    duty = from_env({"HOTLINE_DUTY_NUMBER": " 0777-2825000 "})["HOTLINE_DUTY_NUMBER"]
    assert duty == "0777-2825000"
    assert from_env({})["HOTLINE_DUTY_NUMBER"] is None
    with pytest.raises(ConfigError, match="HOTLINE_DUTY_NUMBER: 'the office' is not a telephone"):
        from_env({"HOTLINE_DUTY_NUMBER": "the office"})


def test_more_than_nine_areas_are_keyed_in_with_two_digits(app, county):
    villages = [(f"450703100{n:03d}", f"第{n}村") for n in range(301, 311)]
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": code, "name": name} for code, name in villages])
    call = Call(app, STRANGER)
    call.start()
    call.press("3")  # 钦北区
    town = call.press("2")  # 大寺镇: all of it, 大寺村 and ten more villages
    assert town.digits == 2 and "第310村，请按12。" in town.text and "井号" in town.text
    last = call.press("12#")
    assert "第310村还没有发布过通知" in last.text


def test_retention_forgets_who_called_but_keeps_the_count(app, api, notices):
    severe, _ = notices
    Call(app, BLIND.phone).start()
    Call(app, STRANGER).start()  # the menu: hears nothing yet
    with app.extensions["engine"].begin() as conn:
        assert hotline.forget_callers(conn, severe) == 1
        assert hotline.forget_callers(conn, severe) == 0  # once
        row = conn.execute(select(hotline_calls).where(
            hotline_calls.c.announcement_id == severe)).one()
        assert (row.resident_id, row.call_sid) == (None, f"forgotten-{row.id}")
        assert hotline.listeners(conn, severe) == 1
