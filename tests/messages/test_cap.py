"""CAP 1.2 in and out, and the Atom feed: what is accepted, what is refused and why."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import xmlschema
from defusedxml.ElementTree import fromstring as safe_fromstring
from hypothesis import given, settings, strategies as st

from messages.announcement import UNWANTED, AnnouncementInput, visible
from messages.cap import ATOM_SCHEMA_PATH, CAP_NAMESPACE, CAP_SCHEMA_PATH, CapError
from messages.cap.read import CapAlert, parse_cap, read_cap_document, referenced_identifiers
from messages.cap.write import CapExport, CapInfo, FeedEntry, atom_feed, to_cap

EXAMPLES = Path(__file__).parent / "cap_examples"
OASIS_EXAMPLES = sorted(EXAMPLES.glob("oasis-*.xml"))
COUNTY = (EXAMPLES / "county-rainstorm-zh-en.xml").read_text(encoding="utf-8")
COUNTY_SENT = datetime.fromisoformat("2026-06-01T08:00:00+08:00")
AREA_NAMES = {"450702": "钦南区", "450703": "钦北区"}
NS = {"cap": CAP_NAMESPACE, "atom": "http://www.w3.org/2005/Atom"}
CST = timezone(timedelta(hours=8))


def county(*replacements: tuple[str, str]) -> bytes:
    """The county example with each (old, new) replaced at its first occurrence."""
    text = COUNTY
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text.encode()


def line_of(document: bytes, needle: str) -> int:
    return document.decode()[:document.decode().index(needle)].count("\n") + 1


def localised(path: Path) -> bytes:
    """An OASIS example with a GB/T 2260 geocode added to each area, so it names our county."""
    geocode = "<geocode><valueName>GB/T 2260</valueName><value>450702</value></geocode></area>"
    return path.read_text(encoding="utf-8").replace("</area>", geocode).encode()


def sent_of(document: bytes) -> datetime:
    return datetime.fromisoformat(read_cap_document(document).findtext("cap:sent", namespaces=NS))


# --- the OASIS CAP 1.2 examples -------------------------------------------------------

@pytest.mark.parametrize("path", OASIS_EXAMPLES, ids=lambda path: path.stem)
def test_oasis_examples_are_valid_cap(path):
    root = read_cap_document(path.read_bytes())
    assert root.tag == f"{{{CAP_NAMESPACE}}}alert"


@pytest.mark.parametrize("path", OASIS_EXAMPLES, ids=lambda path: path.stem)
def test_oasis_examples_name_no_administrative_area_so_are_not_announced(path):
    document = path.read_bytes()
    with pytest.raises(CapError, match=r"info\[1\] \(en-US\): no <area> has a <geocode>") as refused:
        parse_cap(document, now=sent_of(document))
    assert refused.value.line == line_of(document, "<info>")


@pytest.mark.parametrize("name, expected", [
    ("oasis-homeland-security", dict(category="security", severity="severe", urgency="immediate",
                                     certainty="likely", event="Homeland Security Advisory System Update",
                                     headline="Homeland Security Sets Code ORANGE", msg_type="alert")),
    ("oasis-thunderstorm", dict(category="met", severity="severe", urgency="immediate",
                                certainty="observed", headline="SEVERE THUNDERSTORM WARNING",
                                instruction="TAKE COVER IN A SUBSTANTIAL SHELTER UNTIL THE STORM PASSES.",
                                expires=datetime(2003, 6, 17, 23, 0, tzinfo=timezone.utc))),
    ("oasis-earthquake", dict(category="geo", severity="minor", urgency="past", certainty="observed",
                              event="Earthquake", msg_type="update",
                              references="trinet@caltech.edu,TRI13970876.1,2003-06-11T20:30:00-07:00")),
    ("oasis-amber-alert", dict(category="rescue", severity="severe", event="Child Abduction",
                               headline="Amber Alert in Los Angeles County", instruction="")),
])
def test_oasis_examples_map_onto_announcements_once_they_name_an_administrative_area(name, expected):
    document = localised(EXAMPLES / f"{name}.xml")
    alert = parse_cap(document, now=sent_of(document))
    [announcement] = alert.infos
    assert announcement.language == "en"
    assert announcement.areas == ["450702"]
    assert announcement.body  # the CAP description
    for field_name, value in expected.items():
        assert getattr(announcement, field_name) == value, field_name


def test_an_update_keeps_its_references_and_names_the_alert_it_updates():
    document = localised(EXAMPLES / "oasis-earthquake.xml")
    alert = parse_cap(document, now=sent_of(document))
    assert (alert.identifier, alert.sender, alert.msg_type) == ("TRI13970876.2", "trinet@caltech.edu",
                                                               "update")
    assert referenced_identifiers(alert.references) == ["TRI13970876.1"]


def test_referenced_identifiers_are_read_from_each_sender_identifier_sent_triple():
    references = ("a@x.cn,450702-1,2026-06-01T08:00:00+08:00 "
                  "b@y.cn,450702-2,2026-06-01T09:00:00+08:00")
    assert referenced_identifiers(references) == ["450702-1", "450702-2"]
    assert referenced_identifiers(None) == []


# --- a county alert in two languages ---------------------------------------------------

def test_a_county_alert_in_chinese_and_english_becomes_one_announcement_per_language():
    alert = parse_cap(county(), now=COUNTY_SENT)
    expires = datetime(2026, 6, 2, 12, 0, tzinfo=timezone.utc)
    common = dict(areas=["450702", "450703"], category="met", severity="severe", urgency="expected",
                  certainty="likely", status="actual", msg_type="alert", references=None,
                  expires=expires)
    assert alert == CapAlert(
        identifier="450702-20260601-0001", sender="yjj@qinnan.gov.cn", sent=COUNTY_SENT,
        status="actual", msg_type="alert", references=None,
        infos=[
            AnnouncementInput(headline="暴雨橙色预警：请做好防范",
                              body="预计未来24小时钦南区将出现100毫米以上降雨，局部<可能>伴有雷电 & 大风。",
                              instruction="请远离河道和低洼地带，必要时听从安排转移。",
                              event="暴雨", language="zh", **common),
            AnnouncementInput(headline="Orange rainstorm warning: take precautions",
                              body="Over 100 mm of rain is expected in Qinnan within 24 hours, "
                                   "with thunder & strong wind in places.",
                              instruction="Keep away from rivers and low-lying ground; follow "
                                          "instructions to move if asked.",
                              event="Rainstorm", language="en", **common),
        ])


def test_geocodes_that_are_not_administrative_codes_are_ignored():
    english = parse_cap(county(), now=COUNTY_SENT).infos[1]
    assert "999999" not in english.areas  # its valueName is FIPS6


def test_status_and_language_tags_are_read_without_regard_to_letter_case_of_the_language():
    alert = parse_cap(county(("<status>Actual", "<status>Exercise"), ("zh-CN", "ZH-cn")),
                      now=COUNTY_SENT)
    assert alert.status == "exercise"
    assert [info.status for info in alert.infos] == ["exercise", "exercise"]
    assert alert.infos[0].language == "zh"


@pytest.mark.parametrize("chinese, english", [("zh-Hans", "en"), ("cmn", "en-GB"), ("zh", "EN-us")])
def test_bcp47_tags_of_a_block_are_brought_to_the_canonical_language(chinese, english):
    alert = parse_cap(county(("zh-CN", chinese), ("en-US", english)), now=COUNTY_SENT)
    assert [info.language for info in alert.infos] == ["zh", "en"]


@pytest.mark.parametrize("tag, language, written", [("es-US", "es", "es"), ("yue", "yue", "yue"),
                                                    ("zh-yue", "yue", "yue"), ("za", "za", "za")])
def test_a_block_in_any_known_language_is_read_and_written_back(tag, language, written):
    """Texts per language (#19, item 4): not only zh and en. Our output writes zh-CN and en-US
    as before, any other language as its canonical tag."""
    incoming = parse_cap(county(("en-US", tag)), now=COUNTY_SENT)
    assert [info.language for info in incoming.infos] == ["zh", language]
    root = safe_fromstring(to_cap(export_of(incoming)))
    assert [info.findtext("cap:language", namespaces=NS) for info in root.findall("cap:info", NS)] \
        == ["zh-CN", written]
    assert parse_cap(to_cap(export_of(incoming)), now=COUNTY_SENT) == incoming


# --- what is refused -------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&secret;</identifier></alert>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>"""

EXTERNAL_DTD = county(('<alert xmlns=', '<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/cap.dtd">\n<alert xmlns='))
TEN_MEGABYTES = county(("<description>", "<description>" + "雨" * (10 * 1024 * 1024 // 3)))
COUNTY_LINES = COUNTY.splitlines()
TWO_ZH_BLOCKS = county(("<language>en-US</language>", "<language>zh-CN</language>"))

REFUSED = [
    # (case, document, words the message must contain,
    #  the line it must give: as a number, or the text that starts that line, or None for no line)
    ("missing identifier", county(("<identifier>450702-20260601-0001</identifier>", "")),
     "Tag 'cap:identifier' expected", "<alert"),
    ("missing scope", county(("<scope>Public</scope>", "")), "Tag 'cap:scope' expected", "<alert"),
    ("missing event", county(("<event>暴雨</event>", "")), "Tag 'cap:event' expected", "<info>"),
    ("missing sent", county(("<sent>2026-06-01T08:00:00+08:00</sent>", "")),
     "Tag 'cap:sent' expected", "<alert"),
    ("wrong urgency", county(("<urgency>Expected", "<urgency>Soon")),
     "alert/info[1]/urgency: value must be one of", "<urgency>Soon"),
    ("wrong category", county(("<category>Met", "<category>Weather")),
     "alert/info[1]/category", "<category>Weather"),
    ("status in lower case", county(("<status>Actual", "<status>actual")),
     "alert/status: value must be one of", "<status>"),
    ("sent without time zone", county(("<sent>2026-06-01T08:00:00+08:00", "<sent>2026-06-01T08:00:00")),
     "alert/sent", "<sent>"),
    ("unknown language", county(("<language>en-US", "<language>xx-XX")),
     "info[2] (xx-XX): 'xx-XX' names no known language",
     "<info>\n    <language>xx-XX"),
    ("System status", county(("<status>Actual", "<status>System")),
     "status System is for messages between systems", "<status>"),
    ("Ack message", county(("<msgType>Alert", "<msgType>Ack")), "msgType Ack is not an announcement",
     "<msgType>"),
    ("update without references", county(("<msgType>Alert", "<msgType>Update")),
     "msgType Update needs <references>", "<msgType>"),
    ("malformed references", county(("<scope>Public</scope>",
                                     "<scope>Public</scope><references>450702-1</references>"),
                                    ("<msgType>Alert", "<msgType>Cancel")),
     "reference '450702-1' is not sender,identifier,sent", "<references>"),
    ("private scope", county(("<scope>Public", "<scope>Private")),
     "scope Private alerts are not for the public", "<scope>"),
    ("identifier with a comma", county(("450702-20260601-0001", "450702,0001")),
     "identifier '450702,0001' must be non-empty, without spaces, commas", "<identifier>"),
    ("no info block", "\n".join(COUNTY_LINES[:8] + ["</alert>"]).encode(),
     "the alert has no <info> block", "<alert"),
    ("no administrative geocode", county(("GB/T 2260", "SAME"), ("GB/T 2260", "SAME")),
     "info[1] (zh-CN): no <area> has a <geocode> whose valueName is one of GB/T 2260, GB2260, ADCODE, "
     "administrative_code (found: SAME)", "<info>"),
    ("malformed area code", county(("<value>450702</value>", "<value>45070</value>")),
     "info[1] (zh-CN): areas[0]: '45070' is not an administrative code", "<area>"),
    ("headline too long", county(("<headline>暴雨橙色预警：请做好防范", "<headline>" + "预" * 141)),
     "info[1] (zh-CN): headline: is 141 characters long; the limit is 140", "<headline>"),
    ("missing headline", county(("<headline>暴雨橙色预警：请做好防范</headline>", "")),
     "info[1] (zh-CN): headline: is required", "<info>"),
    ("missing description", county(("<description>预计未来24小时钦南区将出现100毫米以上降雨，局部&lt;可能&gt;"
                                    "伴有雷电 &amp; 大风。</description>", "")),
     "info[1] (zh-CN): body: is required", "<info>"),
    ("severity Unknown", county(("<severity>Severe", "<severity>Unknown")),
     "info[1] (zh-CN): severity: 'Unknown' is not one of extreme", "<severity>Unknown"),
    ("two blocks in one language", TWO_ZH_BLOCKS, "a second <info> block in zh-CN",
     "<info>\n    <language>zh-CN</language>\n    <category>Met</category>\n    <event>Rainstorm"),
    ("wrong namespace (CAP 1.1)", county(("cap:1.2", "cap:1.1")),
     "the root element is {urn:oasis:names:tc:emergency:cap:1.1}alert, not <alert> in the CAP 1.2 "
     "namespace", "<alert"),
    ("no namespace", county((' xmlns="urn:oasis:names:tc:emergency:cap:1.2"', "")),
     "the root element is alert, not <alert>", "<alert"),
    ("XXE: external entity", XXE, "document type declarations (<!DOCTYPE>) and entities are refused",
     "<!DOCTYPE"),
    ("billion laughs", BILLION_LAUGHS, "entity-expansion (billion laughs)", "<!DOCTYPE"),
    ("external DTD", EXTERNAL_DTD, "document type declarations (<!DOCTYPE>)", "<!DOCTYPE"),
    ("not XML at all", b"headline=flood&body=rain", "not XML: not well-formed (invalid token)", 1),
    ("empty body", b"", "not XML: no element found", 1),
    ("unclosed element", county(("</headline>", "")), "not XML: mismatched tag",
     "</info>"),
    ("a 10 MB body", TEN_MEGABYTES, f"the document is {len(TEN_MEGABYTES)} bytes long; the limit is "
                                    "1000000", None),
]


@pytest.mark.parametrize("document, words, line", [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])
def test_malformed_and_unacceptable_documents_are_refused_with_the_reason_and_line(
        document, words, line):
    with pytest.raises(CapError) as refused:
        parse_cap(document, now=COUNTY_SENT)
    assert words in refused.value.message
    assert refused.value.line == (line_of(document, line) if isinstance(line, str) else line)
    if line is not None:
        assert str(refused.value) == f"line {refused.value.line}: {refused.value.message}"


def test_an_alert_whose_expiry_has_passed_is_refused():
    after_expiry = datetime(2026, 6, 3, tzinfo=CST)
    with pytest.raises(CapError, match=r"info\[1\] \(zh-CN\): expires: is already past") as refused:
        parse_cap(county(), now=after_expiry)
    assert refused.value.line == line_of(county(), "<expires>")


def test_the_external_entity_is_never_read():
    with pytest.raises(CapError) as refused:
        parse_cap(XXE)
    assert "root:" not in str(refused.value)


def test_the_size_limit_is_checked_before_parsing():
    with pytest.raises(CapError, match="the limit is 100"):
        parse_cap(BILLION_LAUGHS, max_bytes=100)


# --- CAP out, and back in -------------------------------------------------------------

def export_of(alert: CapAlert) -> CapExport:
    """What the gateway would build from the announcement stored for ``alert``."""
    return CapExport(
        identifier=alert.identifier, sender=alert.sender, sent=alert.sent, status=alert.status,
        msg_type=alert.msg_type, references=alert.references,
        infos=[CapInfo(language=info.language, category=info.category, event=info.event,
                       urgency=info.urgency, severity=info.severity, certainty=info.certainty,
                       headline=info.headline, description=info.body, instruction=info.instruction,
                       expires=info.expires, web="https://qinnan.gov.cn/tongbao/a/1",
                       areas=[(code, AREA_NAMES.get(code, "")) for code in info.areas])
               for info in alert.infos])


def cap_schema_errors(document: bytes) -> list[str]:
    """Checked with a schema loaded independently of messages.cap."""
    schema = xmlschema.XMLSchema(str(CAP_SCHEMA_PATH))
    return [str(error) for error in schema.iter_errors(document.decode())]


def test_round_trip_preserves_every_mapped_field():
    incoming = parse_cap(county(), now=COUNTY_SENT)
    outgoing = to_cap(export_of(incoming))
    assert cap_schema_errors(outgoing) == []
    assert parse_cap(outgoing, now=COUNTY_SENT) == incoming


@pytest.mark.parametrize("status, msg_type, references", [
    ("exercise", "update", "yjj@qinnan.gov.cn,450702-1,2026-06-01T07:00:00+08:00"),
    ("test", "cancel", "yjj@qinnan.gov.cn,450702-1,2026-06-01T07:00:00+08:00 "
                       "yjj@qinnan.gov.cn,450702-2,2026-06-01T07:30:00+08:00"),
    ("draft", "alert", None),
])
def test_round_trip_of_statuses_updates_and_cancels(status, msg_type, references):
    incoming = parse_cap(county(), now=COUNTY_SENT)
    incoming = replace(incoming, status=status, msg_type=msg_type, references=references,
                       infos=[replace(info, status=status, msg_type=msg_type, references=references)
                              for info in incoming.infos])
    assert parse_cap(to_cap(export_of(incoming)), now=COUNTY_SENT) == incoming


def test_the_output_has_each_language_in_its_own_info_with_named_areas():
    root = safe_fromstring(to_cap(export_of(parse_cap(county(), now=COUNTY_SENT))))
    infos = root.findall("cap:info", NS)
    assert [info.findtext("cap:language", namespaces=NS) for info in infos] == ["zh-CN", "en-US"]
    assert [area.findtext("cap:areaDesc", namespaces=NS) for area in infos[0].findall("cap:area", NS)] \
        == ["钦南区", "钦北区"]
    assert infos[0].findtext("cap:area/cap:geocode/cap:valueName", namespaces=NS) == "GB/T 2260"
    assert root.findtext("cap:scope", namespaces=NS) == "Public"
    assert infos[0].findtext("cap:web", namespaces=NS) == "https://qinnan.gov.cn/tongbao/a/1"


def test_utc_is_written_as_minus_zero_as_cap_requires():
    alert = export_of(parse_cap(county(), now=COUNTY_SENT))
    alert.sent = datetime(2026, 6, 1, 0, 0, 0, 123456, tzinfo=timezone.utc)
    document = to_cap(alert)
    assert b"<sent>2026-06-01T00:00:00-00:00</sent>" in document
    assert parse_cap(document, now=COUNTY_SENT).sent == datetime(2026, 6, 1, tzinfo=timezone.utc)


def test_carriage_returns_from_a_web_form_survive():
    alert = export_of(parse_cap(county(), now=COUNTY_SENT))
    alert.infos[0].description = "第一行\r\n第二行\r第三行"
    assert parse_cap(to_cap(alert), now=COUNTY_SENT).infos[0].body == "第一行\r\n第二行\r第三行"


def _export_with(**changes) -> CapExport:
    alert = export_of(parse_cap(county(), now=COUNTY_SENT))
    info_changes = {key: value for key, value in changes.items() if key in CapInfo.__dataclass_fields__}
    alert_changes = {key: value for key, value in changes.items() if key not in info_changes}
    return replace(alert, **alert_changes, infos=[replace(alert.infos[0], **info_changes)])


@pytest.mark.parametrize("changes, words", [
    (dict(sent=datetime(2026, 6, 1, 8, 0)), "sent: needs a time zone"),
    (dict(expires=datetime(2026, 6, 2, 8, 0)), "expires: needs a time zone"),
    (dict(severity="unknown"), "severity: 'unknown' is not one of"),
    (dict(status="system"), "status: 'system' is not one of"),
    (dict(language="xx"), "language: 'xx' names no known language"),
    (dict(language="fr-FR"), "language: 'fr-FR' is not in its canonical form"),
    (dict(areas=[]), "name at least one area"),
    (dict(identifier="a b"), "identifier: 'a b' must be non-empty, without spaces"),
    (dict(headline="bell\x07"), "headline: contains U+0007, which XML cannot carry"),
    (dict(scope="Everyone"), "alert/scope"),
])
def test_to_cap_refuses_what_cannot_become_valid_cap(changes, words):
    with pytest.raises(ValueError) as refused:
        to_cap(_export_with(**changes))
    assert words in str(refused.value)


KEPT_OUT = "".join(filter(UNWANTED.match, map(chr, range(0x10000))))
# Text built from pieces so that XML's awkward characters and line ends turn up often.
AWKWARD_PIECES = ["<", ">", "&", "&amp;", '"', "'", "]]>", "&#13;", "\r\n", "\r", "\n", "\t", " ", "\u3000"]
XML_TEXT = st.lists(
    st.one_of(
        st.sampled_from(AWKWARD_PIECES),
        st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=8),
        # anything XML can carry (control characters, surrogates and non-characters cannot)
        # and an announcement keeps (bidi overrides and byte order marks are taken out)
        st.text(st.characters(exclude_categories=("Cs", "Cc", "Cn"),
                              exclude_characters=KEPT_OUT), min_size=1, max_size=8),
    ),
    max_size=10,
).map("".join).map(str.strip)  # parse_announcement strips, as the form does


@settings(max_examples=60, deadline=None)
@given(headline=XML_TEXT.filter(visible), body=XML_TEXT.filter(visible),
       instruction=XML_TEXT.filter(lambda text: not text or visible(text)),
       event=XML_TEXT.filter(lambda text: not text or visible(text)))
def test_any_text_survives_to_cap_and_back(headline, body, instruction, event):
    document = to_cap(_export_with(headline=headline, description=body, instruction=instruction,
                                   event=event))
    info = parse_cap(document, now=COUNTY_SENT).infos[0]
    assert (info.headline, info.body, info.instruction, info.event) == (headline, body, instruction,
                                                                       event)


# --- the Atom feed --------------------------------------------------------------------

FEED_UPDATED = datetime(2026, 6, 1, 8, 5, tzinfo=CST)
ENTRIES = [
    FeedEntry(entry_id="https://qinnan.gov.cn/tongbao/a/2", title="暴雨橙色预警 <更新> & 转移",
              updated=FEED_UPDATED, summary="预计未来24小时有大暴雨。",
              cap_url="https://qinnan.gov.cn/api/v1/announcements/2.cap"),
    FeedEntry(entry_id="https://qinnan.gov.cn/tongbao/a/1", title="Water supply interruption",
              updated=datetime(2026, 5, 31, 9, 0, tzinfo=timezone.utc), summary="Tap water off 9–12.",
              cap_url="https://qinnan.gov.cn/api/v1/announcements/1.cap"),
]


def feed(entries=ENTRIES) -> bytes:
    return atom_feed(entries, feed_id="https://qinnan.gov.cn/feeds/alerts.atom", title="钦南区预警信息",
                     updated=FEED_UPDATED, self_url="https://qinnan.gov.cn/feeds/alerts.atom")


@pytest.mark.parametrize("entries", [ENTRIES, []], ids=["two entries", "no entries"])
def test_the_feed_validates_against_the_atom_schema(entries):
    schema = xmlschema.XMLSchema(str(ATOM_SCHEMA_PATH))
    assert [str(error) for error in schema.iter_errors(feed(entries).decode())] == []


def test_the_feed_has_what_rfc_4287_requires_and_links_each_entry_to_its_cap_document():
    root = safe_fromstring(feed())
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    for name in ("atom:id", "atom:title", "atom:updated", "atom:author/atom:name"):
        assert root.findtext(name, namespaces=NS), name
    assert root.find("atom:link[@rel='self']", NS).get("href") == "https://qinnan.gov.cn/feeds/alerts.atom"
    entries = root.findall("atom:entry", NS)
    assert [entry.findtext("atom:title", namespaces=NS) for entry in entries] == \
        ["暴雨橙色预警 <更新> & 转移", "Water supply interruption"]
    for entry, expected in zip(entries, ENTRIES):
        assert entry.findtext("atom:id", namespaces=NS) == expected.entry_id
        assert datetime.fromisoformat(entry.findtext("atom:updated", namespaces=NS)) == expected.updated
        assert entry.findtext("atom:summary", namespaces=NS) == expected.summary
        link = entry.find("atom:link[@rel='alternate']", NS)
        assert (link.get("type"), link.get("href")) == ("application/cap+xml", expected.cap_url)


def test_the_feed_refuses_dates_without_a_time_zone():
    with pytest.raises(ValueError, match="time zone"):
        feed([replace(ENTRIES[0], updated=datetime(2026, 6, 1, 8, 5))])
