"""Configuration, read from the environment in this one place.

Every name here is documented in the README's configuration table; several are
a contract with operators' deployments and must keep their names.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway import logs
from messages.audio import DEFAULT_VOICES, VOICE_NAME
from messages.gbt35965 import DEFAULT_EVENT_CODES, DEFAULT_OTHER_EVENT_CODE
from messages.languages import LanguageError, canonical


class ConfigError(ValueError):
    pass


def _text(default: str | None = None) -> Callable[[str | None], Any]:
    return lambda raw: default if raw in (None, "") else raw


def _number(default: float, *, minimum: float = 0) -> Callable[[str | None], float]:
    def convert(raw: str | None) -> float:
        if raw in (None, ""):
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{raw!r} is not a number") from None
        if value < minimum:
            raise ConfigError(f"{value} is below the minimum {minimum}")
        return value
    return convert


def _whole(default: int, *, minimum: int = 0) -> Callable[[str | None], int]:
    number = _number(default, minimum=minimum)
    return lambda raw: int(number(raw))


def _flag(default: bool) -> Callable[[str | None], bool]:
    def convert(raw: str | None) -> bool:
        if raw in (None, ""):
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{raw!r} is not one of 1/0, true/false, yes/no")
    return convert


def _choice(default: str, choices: tuple[str, ...], *, upper: bool = False) -> Callable[[str | None], str]:
    def convert(raw: str | None) -> str:
        if raw in (None, ""):
            return default
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in choices:
            raise ConfigError(f"{raw!r} is not one of {', '.join(choices)}")
        return value
    return convert


SEVERITIES = ("extreme", "severe", "moderate", "minor", "unknown")


def _minutes_per_severity(default: Mapping[str, float]) -> Callable[[str | None], dict[str, float]]:
    """``extreme=120,severe=60``: minutes per CAP severity; severities not named keep the default."""
    def convert(raw: str | None) -> dict[str, float]:
        values = dict(default)
        for item in filter(None, (part.strip() for part in (raw or "").split(","))):
            severity, _, minutes = item.partition("=")
            if severity.strip() not in SEVERITIES:
                raise ConfigError(f"{severity.strip()!r} is not a severity "
                                  f"({', '.join(SEVERITIES)})")
            values[severity.strip()] = _number(0, minimum=0)(minutes.strip() or "x")
        return values
    return convert


def _voices(default: Mapping[str, str]) -> Callable[[str | None], dict[str, str]]:
    """``yue=yue,hak=hak``: an espeak-ng voice per spoken language (any BCP 47 tag, kept in its
    canonical form: ``cmn=`` sets ``zh``); languages not named keep the default, ``za=`` with
    no voice removes one."""
    def convert(raw: str | None) -> dict[str, str]:
        voices = dict(default)
        for item in filter(None, (part.strip() for part in (raw or "").split(","))):
            tag, equals, voice = item.partition("=")
            if not equals:
                raise ConfigError(f"{item!r} is not language=voice (e.g. yue=yue)")
            try:
                language = canonical(tag)
            except LanguageError as error:
                raise ConfigError(str(error)) from None
            voice = voice.strip().lower()
            if not voice:
                voices.pop(language, None)
            elif not VOICE_NAME.fullmatch(voice):
                raise ConfigError(f"{voice!r} is not an espeak-ng voice name (e.g. yue, en-us)")
            else:
                voices[language] = voice
        return voices
    return convert


def _time_zone(default: str) -> Callable[[str | None], str]:
    """An IANA time zone name (``Asia/Shanghai``), checked against the zone database."""
    def convert(raw: str | None) -> str:
        name = default if raw in (None, "") else raw.strip()
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{name!r} is not a time zone name (e.g. Asia/Shanghai)") from None
        return name
    return convert


def _phone_number() -> Callable[[str | None], str | None]:
    """A telephone number as a caller would dial it (``+86 777 2825000``, ``0777-2825000``)."""
    def convert(raw: str | None) -> str | None:
        if raw in (None, ""):
            return None
        number = raw.strip()
        if not PHONE_NUMBER.fullmatch(number):
            raise ConfigError(f"{number[:40]!r} is not a telephone number (e.g. +867772825000)")
        return number
    return convert


PHONE_NUMBER = re.compile(r"\+?[0-9][0-9 -]{2,30}")


def _digits(default: str, count: int) -> Callable[[str | None], str]:
    def convert(raw: str | None) -> str:
        value = default if raw in (None, "") else raw.strip()
        if not (value.isascii() and value.isdigit() and len(value) == count):
            raise ConfigError(f"{raw!r} is not {count} digits")
        return value
    return convert


def _codes(default: Mapping[str, str]) -> Callable[[str | None], dict[str, str]]:
    """``山洪=11A05,暴雨=11B03``: a GB/T 35965.1 event type code per word of a notice's event;
    words not named keep the default, ``暴雨=`` with no code removes one."""
    def convert(raw: str | None) -> dict[str, str]:
        codes = dict(default)
        for item in filter(None, (part.strip() for part in (raw or "").split(","))):
            word, equals, code = item.partition("=")
            if not equals or not word.strip():
                raise ConfigError(f"{item!r} is not word=code (e.g. 暴雨=11B03)")
            if code.strip():
                codes[word.strip()] = code.strip()
            else:
                codes.pop(word.strip(), None)
        return codes
    return convert


#: name -> converter (with its default). Unset names take the default.
SETTINGS: dict[str, Callable[[str | None], Any]] = {
    "TONGBAO_INSTANCE": _text(),        # unset: instance/ beside the code (Flask's default)
    "DATABASE_URL": _text(),            # unset: SQLite in the instance folder
    "REDIS_URL": _text(),               # unset: an embedded Redis server
    "MQTT_URL": _text(),                # unset: an embedded MQTT broker
    "SECRET_KEY": _text(),              # unset: generated once into the instance folder
    "PUBLIC_BASE_URL": _text(),         # unset: http://HOST:PORT
    "HOST": _text("127.0.0.1"),
    "PORT": _whole(5000, minimum=1),
    "OFFICE_NAME": _text("钦州市人民政府新闻办公室"),
    "OFFICE_NAME_EN": _text(""),       # unset: English notices name OFFICE_NAME
    "OFFICE_TIMEZONE": _time_zone("Asia/Shanghai"),  # times on the console and public page
    "SMS_SIGNATURE": _text("钦州发布"),
    "SMS_SIGNATURE_LATIN": _text(""),  # unset: English SMS open with SMS_SIGNATURE too
    "CAP_SENDER": _text("tongbao@qinzhou.example.gov.cn"),
    "POLICY_FILE": _text(os.path.join(os.path.dirname(os.path.dirname(__file__)),
                                      "audiences", "policy.toml")),
    "OUTBOX_FALLBACK": _flag(True),
    "TWILIO_ACCOUNT_SID": _text(),
    "TWILIO_AUTH_TOKEN": _text(),
    "TWILIO_FROM_NUMBER": _text(),
    "TWILIO_MESSAGING_SERVICE_SID": _text(),
    "TWILIO_API_BASE": _text(),
    "WECHAT_APP_ID": _text(),
    "WECHAT_APP_SECRET": _text(),
    "WECHAT_TEMPLATE_ID": _text(),
    "WECHAT_API_BASE": _text("https://api.weixin.qq.com"),
    "WECHAT_CALLBACK_TOKEN": _text(),  # unset: WeChat delivery reports are refused
    "WECOM_API_BASE": _text("https://qyapi.weixin.qq.com"),
    "SMS_RATE": _number(10, minimum=0.01),
    "VOICE_RATE": _number(1, minimum=0.01),
    "WECHAT_RATE": _number(50, minimum=0.01),
    "LOUDSPEAKER_RATE": _number(100, minimum=0.01),
    "WECOM_ROBOT_RATE": _number(5, minimum=0.01),
    "BROADCAST_RATE": _number(5, minimum=0.01),  # broadcaster and webhook POSTs, all together
    "BROADCAST_OFFICE_CODE": _digits("450700", 6),  # GB/T 2260 code of the issuing office (6 digits)
    "BROADCAST_ORG_CODE": _digits("000", 3),  # the office's organisation industry code (3 digits)
    "BROADCAST_EVENT_CODES": _codes(DEFAULT_EVENT_CODES),  # event word -> GB/T 35965.1 code
    "BROADCAST_OTHER_EVENT_CODE": _text(DEFAULT_OTHER_EVENT_CODE),  # an event no word matches
    "BROADCAST_CRAWL_LENGTH": _whole(60, minimum=10),  # characters of the TV crawl line
    "BROADCAST_TIMEOUT_SECONDS": _number(10, minimum=1),
    "WEIBO_ACCESS_TOKEN": _text(),  # unset: nothing is posted to Weibo
    "WEIBO_API_BASE": _text("https://api.weibo.com"),
    "WEIBO_RIP": _text("127.0.0.1"),  # statuses/share's required "rip": the poster's real IP
    "WEIBO_MAX_CHARACTERS": _whole(140, minimum=40),  # statuses/share: at most 140 汉字
    "WEIBO_RATE": _number(0.1, minimum=0.01),
    "SMS_PRICE": _number(0.05),
    "VOICE_PRICE": _number(0.15),
    "BATCH_SIZE": _whole(200, minimum=1),
    "MAX_ATTEMPTS": _whole(3, minimum=1),
    "RETRY_DELAY_SECONDS": _number(30),
    "STALE_SENDING_SECONDS": _number(60, minimum=1),
    "RECONCILE_SECONDS": _number(30, minimum=1),
    "RETRY_BUDGET_MINUTES": _minutes_per_severity({"extreme": 120, "severe": 60, "moderate": 30,
                                                   "minor": 30, "unknown": 30}),
    "VOICE_MAX_ATTEMPTS": _whole(3, minimum=1),
    "VOICE_RETRY_DELAY_SECONDS": _number(600),
    "VOICE_GATHER_SECONDS": _whole(8, minimum=1),  # wait for a key after each play of a call
    "VOICE_CONCURRENT_CALLS": _whole(0, minimum=0),  # calls in progress at once; 0: no limit
    "HOTLINE_DUTY_NUMBER": _phone_number(),  # unset: the hotline offers no key 0
    "SPEECH_RATE": _whole(140, minimum=60),
    "SPEECH_VOICES": _voices(DEFAULT_VOICES),  # spoken language -> espeak-ng voice
    "MEDIA_DIR": _text(),               # unset: media/ in the instance folder
    "SIGNING_KEY_PATH": _text(),        # unset: loudspeaker-signing-key.pem in the instance folder
    "LOUDSPEAKER_ACK_SECONDS": _number(60, minimum=1),
    "SESSION_MINUTES": _number(30, minimum=1),
    "JOIN_CODE_MINUTES": _whole(10, minimum=1),  # a self-registration code's life
    "JOIN_CODES_PER_NUMBER": _whole(3, minimum=1),  # codes one phone is sent an hour
    "JOIN_CODES_PER_ADDRESS": _whole(10, minimum=1),  # codes one client address asks for an hour
    "TRUSTED_PROXIES": _whole(0),       # reverse proxies in front whose X-Forwarded-For is true
    "METRICS_TOKEN": _text(),           # unset: no /metrics
    # prometheus_client's own setting, read here too: where gunicorn's processes keep values
    "PROMETHEUS_MULTIPROC_DIR": _text(),
    "MAX_REQUEST_BYTES": _whole(256 * 1024, minimum=1024),  # any request body but a roster's
    "MAX_ROSTER_BYTES": _whole(64 * 1024 * 1024, minimum=1024),  # a roster upload (API, console)
    "LOG_FORMAT": _choice("json", logs.FORMATS),  # `serve` (the quickstart) says text
    "LOG_LEVEL": _choice("INFO", logs.LEVELS, upper=True),
    "RETENTION_DAYS": _whole(0),  # 0: delivery details are kept; see gateway/delivery/retention.py
    "GRID_NUDGE_AFTER_MINUTES": _whole(15),  # 0: grid workers are not nudged; docs/grid-workers.md
}


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """All settings, converted; a bad value stops start-up with its name."""
    environ = os.environ if environ is None else environ
    values = {}
    for name, convert in SETTINGS.items():
        try:
            values[name] = convert(environ.get(name))
        except ConfigError as error:
            raise ConfigError(f"environment variable {name}: {error}") from None
    return values
