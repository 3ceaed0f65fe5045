"""Announcement validation: what is accepted, and errors that name the field."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from messages.announcement import ValidationError, parse_announcement

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
GOOD = {"headline": "暴雨预警", "body": "特大暴雨。", "areas": ["450702"]}


def parse(**fields):
    return parse_announcement({**GOOD, **fields}, now=NOW)


def test_defaults_and_case_insensitive_enumerations():
    result = parse(severity="Extreme", status="EXERCISE", msg_type="Alert", urgency="Immediate",
                   certainty="Observed", category="Met", channels=["SMS", "wechat", "sms"])
    assert (result.severity, result.status, result.msg_type) == ("extreme", "exercise", "alert")
    assert (result.urgency, result.certainty, result.category) == ("immediate", "observed", "met")
    assert result.channels == ["sms", "wechat"]
    assert parse().channels == ["sms", "voice", "wechat", "loudspeaker"]
    assert parse().language == "zh" and parse().status == "actual"


def test_expiry_is_kept_in_utc():
    result = parse(expires="2026-11-29T08:00:00+08:00")
    assert result.expires == datetime(2026, 11, 29, 0, 0, tzinfo=timezone.utc)
    assert parse(expires="2026-11-29T00:00:00Z").expires == result.expires


@pytest.mark.parametrize("fields, field, message", [
    ({"headline": ""}, "headline", "is required"),
    ({"headline": "   "}, "headline", "is required"),
    ({"headline": 5}, "headline", "must be text"),
    ({"headline": "长" * 141}, "headline", "141 characters long; the limit is 140"),
    ({"body": "x" * 4001}, "body", "the limit is 4000"),
    ({"severity": "catastrophic"}, "severity", "is not one of extreme"),
    ({"status": "system"}, "status", "is not one of actual"),
    ({"language": "fr"}, "language", "is not one of zh, en"),
    ({"areas": []}, "areas", "non-empty list"),
    ({"areas": "450702"}, "areas", "non-empty list"),
    ({"areas": ["4507"]}, "areas[0]", "is not an administrative code"),
    ({"areas": ["450702", "45070x"]}, "areas[1]", "is not an administrative code"),
    ({"channels": ["fax"]}, "channels[0]", "'fax' is not one of"),
    ({"channels": []}, "channels", "non-empty list"),
    ({"expires": "tomorrow"}, "expires", "not an ISO 8601"),
    ({"expires": "2026-11-29T08:00:00"}, "expires", "needs a time zone offset"),
    ({"expires": "2026-11-01T08:00:00+08:00"}, "expires", "already past"),
    ({"colour": "red"}, "colour", "is not a field"),
])
def test_bad_fields_are_named(fields, field, message):
    with pytest.raises(ValidationError) as caught:
        parse(**fields)
    assert caught.value.field == field
    assert message in caught.value.message


def test_a_non_object_is_refused():
    with pytest.raises(ValidationError, match="expected a JSON object"):
        parse_announcement(["headline"], now=NOW)
