"""Server texts the console shows, in the officer's language.

The layers below speak English to the API and the logs. A validation error carries a code
and its parameters (``messages.announcement.ValidationError``), worded here; an audit entry
is an action name, a target (``announcement:12``) and a JSON detail, each worded here; a
delivery the unreached list names is a channel, a status and a count. Roster errors come from
``audiences/`` as English sentences with no code, so they are matched by their fixed wording
(``ROSTER_PROBLEMS``), and a sentence that matches none is shown as it came.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import format_datetime, get_locale, gettext as _


def N_(message: str) -> str:
    """A string for the catalogue, translated where it is used."""
    return message


# --- validation errors ----------------------------------------------------------------------

#: The fields of an announcement, as the compose form labels them.
FIELD_LABELS = {
    "headline": N_("Headline"), "body": N_("Body"), "instruction": N_("What residents should do"),
    "severity": N_("Severity"), "status": N_("Kind of announcement"),
    "language": N_("Language of the message"), "expires": N_("Expires"),
    "areas": N_("Target areas"), "channels": N_("Channels"), "references": N_("Replaces"),
    "msg_type": N_("Kind of announcement"), "reason": N_("Reason"),
    "correction": N_("Correction"), "translations": N_("Translations"), "event": N_("Event"),
}

#: ``ValidationError.code`` → the sentence, with the error's ``params``.
VALIDATION_MESSAGES = {
    "required": N_("is required."),
    "not_text": N_("must be text."),
    "invisible": N_("has no visible character: only spaces, zero-width, direction or control "
                    "characters."),
    "too_long": N_("is %(length)d characters long; the limit is %(limit)d."),
    "not_one_of": N_("“%(value)s” is not one of the choices."),
    "not_language": N_("“%(value)s” is not a language tag (e.g. zh-CN, en)."),
    "language_without_texts": N_("“%(value)s” is not a language the gateway has texts for."),
    "no_areas": N_("choose at least one area."),
    "not_area_code": N_("“%(value)s” is not an administrative area code (6, 9 or 12 digits)."),
    "unknown_area": N_("area %(value)s is not in the area registry."),
    "no_channels": N_("choose at least one channel."),
    "not_time": N_("is not a date and time."),
    "past": N_("is already past."),
    "too_far": N_("is more than ten years ahead."),
    "unknown_reference": N_("“%(value)s” names no known announcement."),
    "drill_and_real_mixed": N_("a drill never replaces a real alert, nor the reverse."),
    "own_language": N_("%(value)s is the announcement's own language; its text is in the "
                       "headline and body."),
    "language_twice": N_("a second translation in %(value)s; give each language once."),
    "unknown_field": N_("is not a field of an announcement."),
}


def field_label(field: str) -> str:
    """``areas[2]`` or ``translations[0].body`` by the name of its field in the form."""
    name = re.sub(r"\[\d+\]", "", field).rsplit(".", 1)[-1]
    label = FIELD_LABELS.get(name) or FIELD_LABELS.get(re.sub(r"\[\d+\].*", "", field))
    return _(label) if label else field


def validation_message(error) -> str:
    """What is wrong, in the reader's language; an error without a known code as it came."""
    template = VALIDATION_MESSAGES.get(getattr(error, "code", None) or "")
    if template is None:
        return error.message
    return _(template, **error.params)


def validation_error(error) -> str:
    """The whole sentence: the field, then what is wrong with it."""
    return _("%(field)s: %(problem)s", field=field_label(error.field),
             problem=validation_message(error))


# --- roster import errors -------------------------------------------------------------------

#: (the English sentence of ``audiences/`` as a pattern, its wording with the named groups).
ROSTER_PROBLEMS = [(re.compile(pattern), message) for pattern, message in (
    (r"^is empty$", N_("is empty.")),
    (r"^is longer than (?P<limit>\d+) characters$", N_("is longer than %(limit)s characters.")),
    (r"^(?P<value>.+) is not a phone number$", N_("%(value)s is not a phone number.")),
    (r"^(?P<value>.+) is not a valid phone number$", N_("%(value)s is not a valid phone number.")),
    (r"^(?P<value>.+) is a number the spreadsheet shortened; format the column as text$",
     N_("%(value)s is a number the spreadsheet shortened; format the column as text.")),
    (r"^(?P<value>.+) is not a WeChat openid",
     N_("%(value)s is not a WeChat openid (1-64 letters, digits, - or _).")),
    (r"^(?P<value>.+) is not a year$", N_("%(value)s is not a year.")),
    (r"^(?P<value>\d+) is not between (?P<first>\d+) and (?P<last>\d+)$",
     N_("%(value)s is not between %(first)s and %(last)s.")),
    (r"^(?P<value>.+) is not a yes/no value", N_("%(value)s is not a yes/no value (1/0, 是/否).")),
    (r"^(?P<value>.+) is already on line (?P<line>\d+)$",
     N_("%(value)s is already on line %(line)s.")),
    (r"^area (?P<value>\S+) is not in the area registry$",
     N_("area %(value)s is not in the area registry.")),
    (r"^grid (?P<value>\S+) is not in the grid registry$",
     N_("grid %(value)s is not in the grid registry.")),
    (r"^grid (?P<value>\S+) is in village (?P<village>\S+), not in (?P<area>\S+)$",
     N_("grid %(value)s is in village %(village)s, not in %(area)s.")),
    # audiences.areas.AreaError: "area code '…' " and the reason
    (r"^area code (?P<value>.*) is empty$", N_("the area code is empty.")),
    (r"^area code (?P<value>.*) (is not a string of digits|must contain digits only)$",
     N_("area code %(value)s must contain digits only.")),
    (r"^area code (?P<value>.*) must have 6 digits",
     N_("area code %(value)s must have 6 digits (province, prefecture, county), "
        "9 (town) or 12 (village).")),
    (r"^area code (?P<value>.*) has no province",
     N_("area code %(value)s has no province: it starts with 00.")),
    (r"^area code (?P<value>.*) ends in 000, which names no town or village$",
     N_("area code %(value)s ends in 000, which names no town or village.")),
    (r"^area code (?P<value>.*) is not a grid code: a village's 12 digits and a "
     r"(?P<digits>\d+)-digit suffix$",
     N_("%(value)s is not a grid code: a village's 12 digits and a %(digits)s-digit suffix.")),
    (r"^area code (?P<value>.*) ends in 000, which names no grid$",
     N_("grid code %(value)s ends in 000, which names no grid.")),
    (r"^(?P<value>.+) is not a channel \((?P<channels>[^)]*)\)$",
     N_("%(value)s is not a channel (%(channels)s).")),
    (r"^a resident needs a phone or a wechat_openid; both are empty$",
     N_("a resident needs a phone number or a WeChat openid; both are empty.")),
    (r"^missing column: a roster needs phone or wechat_openid$",
     N_("missing column: a roster needs a phone or a wechat_openid column.")),
    (r"^missing column", N_("missing column.")),
    (r"^unknown column$", N_("unknown column.")),
    (r"^column appears more than once$", N_("the column appears more than once.")),
    (r"^names the same column \((?P<value>[^)]+)\) as (?P<other>.+)$",
     N_("names the same column (%(value)s) as %(other)s.")),
    (r"^has (?P<count>\d+) fields; the header has (?P<columns>\d+)$",
     N_("has %(count)s fields; the header has %(columns)s.")),
    (r"^has a value beyond the last of the (?P<columns>\d+) columns of the header$",
     N_("has a value beyond the last of the %(columns)s columns of the header.")),
    (r"^the header row is empty", N_("the header row is empty; it needs at least name, "
                                     "area_code and phone or wechat_openid.")),
    (r"^the file is empty", N_("the file is empty; it needs a header row.")),
    (r"^the sheet is empty", N_("the sheet is empty; it needs a header row.")),
    (r"^the file is neither a workbook", N_("the file is neither an Excel workbook (.xlsx) nor a "
                                            "CSV in UTF-8, GBK/GB18030 or UTF-16; save it as "
                                            "“CSV UTF-8”, plain “CSV” from Chinese Excel, "
                                            "“Unicode text” or an Excel workbook.")),
    (r"^the workbook has no sheet (?P<value>'[^']*')",
     N_("the workbook has no sheet %(value)s.")),
    (r"^the workbook cannot be read", N_("the workbook cannot be read.")),
    (r"^the text is not UTF-8", N_("the text is not UTF-8; save the file as “CSV UTF-8” (plain "
                                   "“CSV” in Chinese Excel is GBK).")),
    (r"^loudspeaker cannot be opted out of",
     N_("the village loudspeaker cannot be opted out of: it serves everyone, not one person.")),
)]


def roster_problem(message: str) -> str:
    """A roster error of ``audiences/`` in the reader's language, when its wording is known."""
    for pattern, wording in ROSTER_PROBLEMS:
        match = pattern.match(message)
        if match:
            return _(wording, **match.groupdict())
    return message


# --- the audit log --------------------------------------------------------------------------

AUDIT_ACTIONS = {
    "create": N_("created"), "approve": N_("approved"), "reject": N_("rejected"),
    "cancel": N_("cancelled"), "send": N_("sending"), "login": N_("logged in"),
    "lock": N_("login locked"), "import": N_("imported"), "edit": N_("edited"),
    "rekey": N_("new device keys"), "opt_out": N_("opted out"),
    "phone_invalid": N_("phone number invalid"), "export_unreached": N_("exported the unreached list"),
    "view_thin_residents": N_("viewed thinly covered residents"),
    "view": N_("viewed"), "delete": N_("deleted"), "erase": N_("erased personal data"),
    "backup": N_("backed up the database"), "restore": N_("restored the database"),
    "retention": N_("deleted after the retention period"),
    "grid": N_("saved a grid"), "assign": N_("assigned a grid worker"),
    "unassign": N_("unassigned a grid worker"), "phone": N_("set the phone for nudges"),
    "nudge": N_("nudged a grid worker by SMS"), "visit": N_("visited in person"),
    "register": N_("registered themselves"), "view_registrations": N_("viewed self-registrations"),
    "self_view": N_("viewed their own record"), "self_change": N_("changed their own record"),
    "speaker_languages": N_("set the loudspeakers' languages"),
}

AUDIT_TARGETS = {
    "announcement": N_("announcement %(id)s"), "resident": N_("resident %(id)s"),
    "device": N_("loudspeaker %(id)s"), "robot": N_("group robot %(id)s"),
    "grid": N_("grid %(id)s"), "user": N_("user %(id)s"), "area": N_("area %(id)s"),
    "registration": N_("registration %(id)s"), "destination": N_("destination %(id)s"),
}
AUDIT_PLACES = {"console": N_("console"), "areas": N_("areas"), "residents": N_("residents"),
                "registrations": N_("self-registrations"),
                "grid_worklist": N_("the grid worker's list"),
                "inbound_messages": N_("SMS replies"), "outbox": N_("the outbox")}

AUDIT_DETAIL_KEYS = {
    "headline": N_("headline"), "status": N_("kind"), "areas": N_("areas"),
    "translations": N_("translations"), "drill": N_("drill"), "withdrawal_of": N_("withdraws"),
    "correction_of": N_("corrects"), "state": N_("state"),
    "pending_cancelled": N_("pending messages cancelled"), "deliveries": N_("messages"),
    "thin_residents": N_("residents with fewer than two paths"), "via": N_("via"),
    "format": N_("format"), "rows": N_("rows"), "area": N_("area"), "town": N_("town"),
    "age_band": N_("age"), "impairment": N_("impairment"), "failed_logins": N_("failed logins"),
    "address": N_("address"), "seconds": N_("seconds"), "new": N_("new"), "added": N_("added"),
    "updated": N_("updated"), "retired": N_("retired"), "replace_area": N_("replaced area"),
    "encoding": N_("encoding"), "name": N_("name"), "test": N_("test device"),
    "announcement": N_("announcement"), "resident": N_("resident"), "residents": N_("residents"),
    "registrations": N_("self-registrations"), "pending": N_("waiting for review"),
    "consents": N_("consents"), "needs": N_("needs"), "language": N_("language"),
    "languages": N_("languages"), "opt_out": N_("opted out of"),
    "merged": N_("merged with a resident on the roster"), "kind": N_("kind"),
    "grids": N_("grids"), "people": N_("people"), "worker": N_("grid worker"),
    "left": N_("people left to reach"), "outcome": N_("outcome"), "note": N_("note"),
    "tap": N_("tap id"), "tapped_at": N_("tapped at"), "set": N_("number set"),
    "days": N_("retention days"), "reached": N_("reached"), "replies": N_("SMS replies"),
    "hotline_calls": N_("hotline calls"), "grid_visits": N_("grid visits"),
    "folder": N_("folder"), "schema_from": N_("the backup's schema version"),
    "records": N_("records"),
}
#: A grid worker's visit outcomes (``store.grids.OUTCOMES``), as the buttons and the audit say them.
VISIT_OUTCOMES = {"told": N_("Told in person"), "not_home": N_("Not at home"),
                  "moved": N_("Moved / wrong data"), "refused": N_("Refused")}
#: Values worded for the reader, by the detail's key.
AUDIT_DETAIL_VALUES = {"status": {"actual": N_("real alert"), "exercise": N_("exercise"),
                                  "test": N_("test")},
                       "outcome": VISIT_OUTCOMES}
AUDIT_DETAIL_TEXTS = {
    "withdrawn before sending": N_("withdrawn before sending"),
    "sms (by SMS reply)": N_("SMS (by SMS reply)"),
}


def visit_outcome_labels() -> dict[str, str]:
    return {outcome: _(label) for outcome, label in VISIT_OUTCOMES.items()}


def audit_action(action: str) -> str:
    wording = AUDIT_ACTIONS.get(action)
    return _(wording) if wording else action


def audit_target(target: str) -> str:
    kind, _colon, ident = target.partition(":")
    if ident and kind in AUDIT_TARGETS:
        return _(AUDIT_TARGETS[kind], id=ident)
    wording = AUDIT_PLACES.get(target)
    return _(wording) if wording else target


def audit_detail(detail: str) -> str:
    """A JSON detail as ``key: value`` pairs in the reader's words; plain text as it is."""
    try:
        value = json.loads(detail)
    except ValueError:
        wording = AUDIT_DETAIL_TEXTS.get(detail)
        return _(wording) if wording else detail
    if not isinstance(value, dict):
        return detail
    separator = "；" if str(get_locale()) == "zh" else "; "
    return separator.join(f"{_detail_key(key)}: {_detail_value(key, item)}"
                          for key, item in value.items() if item not in (None, "", [], {}))


def _detail_key(key: str) -> str:
    wording = AUDIT_DETAIL_KEYS.get(key)
    return _(wording) if wording else key


def _detail_value(key: str, value) -> str:
    wording = AUDIT_DETAIL_VALUES.get(key, {}).get(value) if isinstance(value, str) else None
    if wording:
        return _(wording)
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in value.items())
    return str(value)


# --- times and deliveries -------------------------------------------------------------------

#: A time as the office reads it (CLDR patterns), with and without seconds.
TIME_PATTERNS = {"zh": ("yyyy年M月d日 HH:mm", "yyyy年M月d日 HH:mm:ss"),
                 "en": ("d MMM yyyy, HH:mm", "d MMM yyyy, HH:mm:ss")}


def office_time_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("OFFICE_TIMEZONE") or "Asia/Shanghai")


def local_time(value: datetime | str | None, seconds: bool = False) -> str:
    """A moment (a naive one is UTC, the database's clock; text is ISO 8601) in the office's
    time zone and the reader's local format: ``2026年12月2日 10:58``, ``2 Dec 2026, 10:58``."""
    if value is None or value == "":
        return "–"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    patterns = TIME_PATTERNS.get(str(get_locale()), TIME_PATTERNS["en"])
    # Converted here, not by Flask-Babel (rebase): OFFICE_TIMEZONE is read at each call.
    return format_datetime(moment.astimezone(office_time_zone()), patterns[seconds], rebase=False)


CHANNEL_NAMES = {"sms": N_("SMS"), "voice": N_("Voice call"), "wechat": N_("WeChat"),
                 "loudspeaker": N_("Village loudspeaker"), "wecom_robot": N_("Village WeChat group")}
DELIVERY_STATUSES = {"planned": N_("Planned"), "queued": N_("Queued"), "sending": N_("Sending"),
                     "sent": N_("Sent"), "delivered": N_("Delivered"),
                     "confirmed": N_("Confirmed"), "failed": N_("Failed"),
                     "cancelled": N_("Cancelled")}


def delivery_try(tried: dict) -> str:
    """One channel tried for a resident, for the unreached CSV: ``短信 失败 ×3 2026年12月2日 10:58
    (the provider's error)``; the provider's own error text stays as it came."""
    channel = CHANNEL_NAMES.get(tried["channel"])
    status = DELIVERY_STATUSES.get(tried["status"])
    words = [_(channel) if channel else tried["channel"], _(status) if status else tried["status"],
             _("%(count)d attempts", count=tried["attempts"])]
    if tried.get("at"):
        words.append(local_time(tried["at"]))
    return " ".join(words) + (f" ({tried['error']})" if tried.get("error") else "")


# --- languages ------------------------------------------------------------------------------

#: Language tags (canonical, ``messages.languages``) the console names in words; any other
#: tag shows as it is.
LANGUAGE_NAMES = {"zh": N_("Chinese"), "cmn": N_("Mandarin"), "yue": N_("Cantonese"),
                  "hak": N_("Hakka"), "za": N_("Zhuang"), "en": N_("English")}


def language_name(tag: str | None, spoken: bool = False) -> str:
    """A language tag in the reader's words; ``spoken`` names Chinese as heard (Mandarin)."""
    if spoken and tag == "zh":
        tag = "cmn"
    wording = LANGUAGE_NAMES.get(tag)
    return _(wording) if wording else (tag or "")
