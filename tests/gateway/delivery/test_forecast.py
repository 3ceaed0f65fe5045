"""gateway/delivery/forecast.py: the preview's reach forecast — queues draining at their rates,
calls limited by their lines, a resident reached by the first of their channels."""
from __future__ import annotations

from collections import Counter

import pytest

from gateway.delivery import forecast, media
from tests.gateway.delivery.test_preview import preview_of
from tests.gateway.delivery.conftest import create, row_of

#: Real providers configured (not the outbox, which has its own rate); never called here.
PROVIDERS = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "unused",
             "TWILIO_FROM_NUMBER": "+15005550006", "WECHAT_APP_ID": "unused",
             "WECHAT_APP_SECRET": "unused", "WECHAT_TEMPLATE_ID": "unused"}
SMS, VOICE, WECHAT = frozenset({"sms"}), frozenset({"voice"}), frozenset({"wechat"})


def test_one_channel_reaches_its_residents_at_its_rate():
    queues = forecast.drain_queues({"sms": 1001}, {"sms": 100})
    sets = Counter({SMS: 1001})
    assert forecast.share_at(sets, queues, 5.0) == pytest.approx(0.5)
    assert forecast.time_to(sets, queues, 0.9) == pytest.approx(9.0)
    assert forecast.time_to(sets, queues, 1.0) == pytest.approx(10.0)


def test_a_resident_is_reached_by_the_first_of_their_channels():
    # everyone gets an SMS (100/s) and a WeChat message (50/s): WeChat never comes first
    both = Counter({frozenset({"sms", "wechat"}): 1001})
    queues = forecast.drain_queues({"sms": 1001, "wechat": 1001}, {"sms": 100, "wechat": 50})
    assert forecast.time_to(both, queues, 0.9) == pytest.approx(9.0)
    # half by SMS only, half by WeChat only: 90 % waits for 80 % of the slower queue
    apart = Counter({SMS: 1001, WECHAT: 1001})
    queues = forecast.drain_queues({"sms": 1001, "wechat": 1001}, {"sms": 100, "wechat": 50})
    assert forecast.time_to(apart, queues, 0.9) == pytest.approx(0.8 * 20.0)


def test_calls_are_limited_by_their_lines_and_reach_when_they_end():
    # 10 lines, 30-second calls: 1/3 call a second, though the rate allows 1
    assert forecast.call_rate(1.0, 10, 30.0) == pytest.approx(1 / 3)
    assert forecast.call_rate(1.0, 0, 30.0) == 1.0  # no limit
    queues = forecast.drain_queues({"voice": 301}, {"voice": 1.0}, call_seconds=30.0, lines=10)
    sets = Counter({VOICE: 301})
    assert forecast.share_at(sets, queues, 29.0) == 0.0  # the first call has not ended
    # rounds of 10 calls 30 s apart: the 301st starts in round 31, at 900 s, and ends at 930 s
    assert forecast.time_to(sets, queues, 1.0) == pytest.approx(930.0)
    # 25 calls: two full rounds, then 5 more a second apart as the lines free
    assert forecast.call_span(25, 1.0, 10, 30.0) == pytest.approx(2 * 30 + 4)
    assert forecast.call_span(25, 1.0, 0, 30.0) == pytest.approx(24.0)  # no limit: the rate


def test_residents_no_channel_reaches_are_never_counted_reached():
    sets = Counter({SMS: 80, frozenset(): 20})
    queues = forecast.drain_queues({"sms": 80}, {"sms": 10})
    assert forecast.reachable_share(sets, queues) == pytest.approx(0.8)
    assert forecast.time_to(sets, queues, 0.9) is None
    assert forecast.share_at(sets, queues, 1e6) == pytest.approx(0.8)


def test_the_preview_forecasts_from_its_own_counts_and_the_configured_rates(app, county):
    app.config.update(SMS_RATE=2, VOICE_RATE=1, WECHAT_RATE=1, VOICE_CONCURRENT_CALLS=1,
                      VOICE_GATHER_SECONDS=8, **PROVIDERS)
    announcement_id = create(app, channels=["sms", "voice", "wechat"], severity="extreme")
    summary = preview_of(app, announcement_id)
    reach = summary["reach_forecast"]
    assert reach["rates"] == {"sms": 2, "voice": 1, "wechat": 1}
    assert reach["concurrent_calls"] == 1
    assert reach["call_seconds"] > 8  # the speech, then the wait for a key
    assert reach["calls_per_second"] == pytest.approx(1 / reach["call_seconds"], rel=0.01)
    assert not reach["speech_seconds_measured"]  # no speech made yet: the longest plausible
    shares = [point["share"] for point in reach["points"]]
    seconds = [point["seconds"] for point in reach["points"]]
    assert shares == sorted(shares) and shares[0] == 0.5 and seconds == sorted(seconds)
    assert reach["seconds_to_90_percent"] == seconds[1]
    # nobody is reached later than the slowest channel's queue allows
    slowest = max(count / reach["rates"][c] for c, count in summary["deliveries"].items()
                  if c in reach["rates"] and c != "voice")
    calls = summary["deliveries"].get("voice", 0)
    assert seconds[-1] <= max(slowest, reach["call_seconds"] * (calls + 1)) + 0.1


def test_once_the_speech_is_made_a_call_lasts_its_length(app, county):
    app.config.update(VOICE_GATHER_SECONDS=8, **PROVIDERS)
    announcement_id = create(app, channels=["voice"], severity="extreme")
    guessed = preview_of(app, announcement_id)["reach_forecast"]
    with app.app_context(), app.extensions["engine"].connect() as conn:
        announcement = row_of(conn, announcement_id)
        media.rendered_for(announcement, "voice", announcement.language)  # makes the speech
        seconds, measured = forecast.speech_seconds(announcement)
    made = preview_of(app, announcement_id)["reach_forecast"]
    assert measured and made["speech_seconds_measured"]
    assert made["call_seconds"] == pytest.approx(seconds + 8, abs=0.1)
    assert made["call_seconds"] <= guessed["call_seconds"]
