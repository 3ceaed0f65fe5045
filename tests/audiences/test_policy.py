"""The channel policy: a table of profiles and the channels they get, and a bad rules file."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from audiences.policy import (PolicyError, channels_for, load_policy, next_channel,
                              parse_policy)
from gateway.config import from_env

POLICY = load_policy(from_env({})["POLICY_FILE"])
ALL = ("sms", "voice", "wechat")
YEAR = 2026


@dataclass
class P:
    phone: str | None = "+8613800000000"
    wechat_openid: str | None = None
    birth_year: int | None = 1990
    visually_impaired: bool = False
    hearing_impaired: bool = False
    has_smartphone: bool = True
    opt_out: str = ""
    pending_review: bool = False


CASES = [
    # (profile, severity, available, expected)
    (P(wechat_openid="o1"), "moderate", ALL, ("wechat",)),
    (P(), "moderate", ALL, ("sms",)),
    (P(wechat_openid="o1", opt_out="wechat"), "moderate", ALL, ("sms",)),
    (P(wechat_openid="o1"), "moderate", ("sms", "voice"), ("sms",)),
    (P(visually_impaired=True, wechat_openid="o1"), "moderate", ALL, ("voice", "sms")),
    (P(visually_impaired=True, opt_out="voice"), "moderate", ALL, ("sms",)),
    (P(hearing_impaired=True, wechat_openid="o1"), "moderate", ALL, ("sms", "wechat")),
    (P(hearing_impaired=True, birth_year=1940), "severe", ALL, ("sms",)),
    (P(visually_impaired=True, hearing_impaired=True), "moderate", ALL, ("sms",)),
    (P(birth_year=1961), "minor", ALL, ("voice", "sms")),           # 65 this year
    (P(birth_year=1962, wechat_openid="o1"), "minor", ALL, ("wechat",)),  # 64
    (P(has_smartphone=False), "moderate", ALL, ("voice", "sms")),
    (P(birth_year=None, wechat_openid="o1"), "moderate", ALL, ("wechat",)),
    (P(phone=None, wechat_openid="o1", birth_year=1940), "moderate", ALL, ()),
    (P(wechat_openid="o1", opt_out="wechat;sms"), "extreme", ALL, ("voice", "sms", "wechat")),
    (P(hearing_impaired=True, wechat_openid="o1"), "extreme", ALL, ("sms", "wechat")),
    (P(phone=None, wechat_openid="o1"), "extreme", ALL, ("wechat",)),
    (P(), "moderate", (), ()),
]


@pytest.mark.parametrize("person, severity, available, expected", CASES)
def test_channels_for(person, severity, available, expected):
    assert channels_for(person, severity=severity, policy=POLICY, available=available,
                        year=YEAR) == expected


@pytest.mark.parametrize("person, already, expected", [
    (P(wechat_openid="o1"), {"wechat"}, "sms"),
    (P(phone=None, wechat_openid="o1"), {"wechat"}, None),
    (P(wechat_openid="o1"), {"wechat", "sms"}, "voice"),
    (P(hearing_impaired=True, wechat_openid="o1"), {"wechat", "sms"}, None),
    (P(visually_impaired=True), {"voice"}, "sms"),
    (P(opt_out="sms", wechat_openid="o1"), {"wechat"}, "voice"),
])
def test_fallback_never_repeats_a_planned_channel(person, already, expected):
    assert next_channel(person, severity="moderate", policy=POLICY, available=ALL,
                        already=already, year=YEAR) == expected


def test_continue_adds_the_next_matching_rule():
    policy = parse_policy({"rule": [
        {"name": "elderly", "when": {"min_age": 65}, "channels": ["voice"], "continue": True},
        {"name": "rest", "first_of": ["wechat", "sms"]}]})
    assert channels_for(P(birth_year=1940), severity="minor", policy=policy, available=ALL,
                        year=YEAR) == ("voice", "sms")


@pytest.mark.parametrize("data, message", [
    ({}, "there is no [[rule]]"),
    ({"rule": [{"channels": ["fax"]}]}, "rule 1.channels: 'fax' is not one of"),
    ({"rule": [{"channels": ["sms"], "first_of": ["sms"]}]}, "exactly one of"),
    ({"rule": [{"channels": ["sms"], "when": {"age": 3}}]}, "unknown condition 'age'"),
    ({"rule": [{"channels": ["sms"], "when": {"min_age": "65"}}]}, "min_age must be a whole number"),
    ({"rule": [{"channels": ["sms"], "colour": "red"}]}, "unknown key 'colour'"),
    ({"rule": [{"channels": ["sms"]}], "fallback": "sms"}, "fallback must be a list"),
    ({"rule": [{"channels": ["sms"]}], "extra": 1}, "unknown top-level key 'extra'"),
])
def test_a_bad_policy_is_refused_with_where(data, message):
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_policy(data)


def test_a_bad_policy_file_stops_the_app(tmp_path):
    from gateway import create_app

    bad = tmp_path / "policy.toml"
    bad.write_text("[[rule]]\nchannels = ['pager']\n")
    with pytest.raises(PolicyError, match="policy.toml: rule 1.channels: 'pager'"):
        create_app({"POLICY_FILE": str(bad), "INSTANCE_PATH": str(tmp_path),
                    "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    bad.write_text("[[rule]\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(str(bad))


@pytest.mark.parametrize("severity", ["extreme", "severe", "moderate", "minor"])
def test_a_resident_pending_review_gets_an_sms_for_extreme_notices_only(severity):
    """Self-registered, not yet approved: their needs (here visually impaired, 80) choose nothing."""
    pending = P(wechat_openid="o1", visually_impaired=True, birth_year=1946, opt_out="sms",
                pending_review=True)
    expected = ("sms",) if severity == "extreme" else ()
    assert channels_for(pending, severity=severity, policy=POLICY, available=ALL,
                        year=YEAR) == expected
    assert channels_for(pending, severity="extreme", policy=POLICY, available=("voice", "wechat"),
                        year=YEAR) == ()
    assert next_channel(pending, severity=severity, policy=POLICY, available=ALL,
                        already=("sms",), year=YEAR) is None
