"""The GB/T 35965.1-style warning document: identifier, Beijing time, colours, references,
code tables, and the schema check every document passes before it leaves."""
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from messages import gbt35965
from messages.gbt35965 import Codes, DocumentError, Reference, WarningDocument

SENT = datetime(2026, 7, 1, 2, 30, 5, 123456, tzinfo=timezone.utc)  # 10:30:05 in Beijing
NOTICE = WarningDocument(
    announcement_id=27, sent=SENT, status="actual", msg_type="alert", sender_name="钦州市人民政府新闻办公室",
    event="暴雨", urgency="immediate", severity="extreme", certainty="likely",
    headline="暴雨预警", description="今夜有大暴雨。", language="zh",
    areas=[("450702", "钦南区"), ("450702100201", "沙埠村")], instruction="请远离河道。",
    web="https://example.gov.cn/a/27")


def parsed(notice=NOTICE, codes=Codes()):
    return ET.fromstring(gbt35965.to_document(notice, codes))


def test_identifier_sender_code_and_beijing_times():
    root = parsed(codes=Codes(office="450702", organisation="123"))
    assert root.findtext("identifier") == "45070212300000_20260701103005_7"
    assert root.findtext("senderCode") == "45070212300000"
    assert root.findtext("sendTime") == "2026-07-01T10:30:05+08:00"
    assert root.findtext("info/effective") == "2026-07-01T10:30:05+08:00"
    assert root.findtext("sender") == "钦州市人民政府新闻办公室"


@pytest.mark.parametrize("severity, colour", [("extreme", "Red"), ("severe", "Orange"),
                                               ("moderate", "Yellow"), ("minor", "Blue"),
                                               ("unknown", "Unknown")])
def test_severity_is_the_warning_colour(severity, colour):
    assert parsed(replace(NOTICE, severity=severity)).findtext("info/severity") == colour


def test_fields_and_areas_by_code():
    info = parsed().find("info")
    assert info.findtext("eventType") == "11B03"
    assert [a.findtext("geocode") for a in info.findall("area")] == ["450702", "450702100201"]
    assert info.findtext("area/areaDesc") == "钦南区"
    assert (info.findtext("description"), info.findtext("instruction")) == ("今夜有大暴雨。", "请远离河道。")
    assert parsed().findtext("status") == "Actual" and parsed().findtext("msgType") == "Alert"


def test_a_cancel_references_the_original_by_its_identifier():
    original_sent = datetime(2026, 6, 30, 23, 0, 0, tzinfo=timezone.utc)
    root = parsed(replace(NOTICE, announcement_id=28, msg_type="cancel", status="exercise",
                          reference=Reference(27, original_sent)))
    assert root.findtext("msgType") == "Cancel" and root.findtext("status") == "Exercise"
    assert root.findtext("references") == (
        "45070000000000,45070000000000_20260701070000_7,2026-07-01T07:00:00+08:00")


def test_event_codes_are_configuration_with_a_fallback():
    codes = Codes(events={"冰": "11X01", "道路结冰": "11B21", "暴雨": "11B03"}, other_event="99999")
    assert codes.event_code("", "道路结冰预警") == "11B21"  # the longest word that matches
    assert codes.event_code("地质灾害", "滑坡") == "99999"
    assert codes.event_code("暴雨", "山洪") == "11B03"  # the event is looked at first


@pytest.mark.parametrize("office, organisation", [("4507", "000"), ("450700", "0a0")])
def test_bad_codes_are_refused(office, organisation):
    with pytest.raises(DocumentError):
        Codes(office=office, organisation=organisation)


def test_the_schema_refuses_a_broken_document():
    document = gbt35965.to_document(NOTICE, Codes())
    gbt35965.check(document)
    with pytest.raises(DocumentError, match="severity"):
        gbt35965.check(document.replace(b"<severity>Red</severity>", b"<severity>Crimson</severity>"))
    with pytest.raises(DocumentError, match="identifier"):
        gbt35965.check(document.replace(b"_20260701103005_7", b"_2026070110305_7"))


def test_text_xml_cannot_carry_is_refused():
    with pytest.raises(DocumentError, match="U\\+0001"):
        gbt35965.to_document(replace(NOTICE, description="bad \x01 text"), Codes())
