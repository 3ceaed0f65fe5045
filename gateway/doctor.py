"""``flask --app wsgi doctor``: everything an operator should know is right before an emergency.

The configuration, the providers' credentials (their form: the providers themselves are not
called), the speech voices (each voice of ``SPEECH_VOICES`` installed, and a short sample
synthesized with it), the loudspeaker
signing key, the permissions of what the gateway keeps under ``instance/``, and each
connection with the checks of ``/readyz``. Each finding says what to do, in plain words.
"""
from __future__ import annotations

import ipaddress
import os
import re
import stat
import tempfile
from typing import Iterator
from urllib.parse import urlsplit

import phonenumbers
from flask import Flask

from gateway.delivery import health, providers
from gateway.delivery.health import Check
from messages import audio, languages

# A finding is a ``health.Check``; one that is ok but says what to do is a warning: fine for
# trying out, worth changing in production.
WARN = True

TWILIO_FORMATS = {
    "TWILIO_ACCOUNT_SID": (r"AC[0-9a-fA-F]{32}", "AC followed by 32 hexadecimal characters"),
    "TWILIO_AUTH_TOKEN": (r"[0-9a-fA-F]{32}", "32 hexadecimal characters"),
    "TWILIO_MESSAGING_SERVICE_SID": (r"MG[0-9a-fA-F]{32}", "MG followed by 32 hexadecimal characters"),
}
WECHAT_FORMATS = {
    "WECHAT_APP_ID": (r"wx[0-9a-fA-F]{16}", "wx followed by 16 hexadecimal characters"),
    "WECHAT_APP_SECRET": (r"[0-9a-fA-F]{32}", "32 hexadecimal characters"),
    "WECHAT_TEMPLATE_ID": (r"[A-Za-z0-9_-]{20,64}", "the template's id from the Official Account "
                                                    "platform (letters, digits, - and _)"),
}
SPEECH_SAMPLES = {"zh": "通报系统语音测试。", "en": "Tongbao speech test."}


def configuration(app: Flask) -> Iterator[Check]:
    config = app.config
    if config["DATABASE_URL"].startswith("sqlite"):
        yield Check("configuration", WARN, "DATABASE_URL is SQLite in the instance folder",
                    "for production set DATABASE_URL to PostgreSQL (docs/deploy.md)")
    if not config["REDIS_URL"]:
        yield Check("configuration", WARN, "REDIS_URL is unset: an embedded Redis, for `serve` only",
                    "for gunicorn and separate workers set REDIS_URL (docs/deploy.md)")
    base = urlsplit(config["PUBLIC_BASE_URL"])
    if base.scheme != "https" and not _loopback(base.hostname or ""):
        yield Check("configuration", False,
                    f"PUBLIC_BASE_URL is {base.scheme}:// on a public address",
                    "serve the gateway over https (deploy/nginx/tongbao.conf) and set "
                    "PUBLIC_BASE_URL=https://…: sessions and provider callbacks need it")
    if len(config["SECRET_KEY"]) < 32:
        yield Check("configuration", False, "SECRET_KEY is shorter than 32 characters",
                    "set SECRET_KEY to a long random value (python3 -c 'import secrets; "
                    "print(secrets.token_hex(32))') or unset it to use instance/secret_key")
    yield Check("configuration", True, "settings read; channel policy loaded")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _formats(config, names: dict[str, tuple[str, str]]) -> Iterator[Check]:
    for name, (pattern, form) in names.items():
        value = config[name]
        if value and not re.fullmatch(pattern, value.strip()):
            yield Check("providers", False, f"{name} does not look right",
                        f"copy it again from the provider's console: it is {form}")


def credentials(app: Flask) -> Iterator[Check]:
    config = app.config
    twilio = [config[name] for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")]
    sender = config["TWILIO_FROM_NUMBER"] or config["TWILIO_MESSAGING_SERVICE_SID"]
    if any(twilio) or sender:
        if not all(twilio) or not sender:
            yield Check("providers", False, "Twilio is partly configured",
                        "set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER (or "
                        "TWILIO_MESSAGING_SERVICE_SID), or none of them")
        yield from _formats(config, TWILIO_FORMATS)
        number = config["TWILIO_FROM_NUMBER"]
        if number and not _e164(number):
            yield Check("providers", False, "TWILIO_FROM_NUMBER is not a phone number in "
                        "international form", "write it as +<country code><number>, e.g. "
                        "+8613800138000")
    wechat = [config[name] for name in WECHAT_FORMATS]
    if any(wechat):
        if not all(wechat):
            yield Check("providers", False, "WeChat is partly configured",
                        "set WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_TEMPLATE_ID, or none")
        yield from _formats(config, WECHAT_FORMATS)
    used = {channel: providers.provider_for(config, channel) or "not available"
            for channel in ("sms", "voice", "wechat", "loudspeaker")}
    yield Check("providers", True, ", ".join(f"{channel}: {provider}"
                                             for channel, provider in used.items()))


def _e164(number: str) -> bool:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return number.startswith("+") and phonenumbers.is_possible_number(parsed)


def voices(app: Flask) -> Iterator[Check]:
    """Each voice of SPEECH_VOICES is installed and speaks a sample of the text it reads."""
    missing = audio.missing_voices(app.config["SPEECH_VOICES"])
    with tempfile.TemporaryDirectory() as folder:
        for language, voice in app.config["SPEECH_VOICES"].items():
            if voice in missing.values():
                yield Check("speech", False, f"{language}: espeak-ng has no voice {voice}; its "
                            "listeners hear the text's language instead",
                            "install Debian's espeak-ng (apt-get install espeak-ng), or set "
                            "SPEECH_VOICES to a voice `espeak-ng --voices` lists")
                continue
            text_language = next((text for text in SPEECH_SAMPLES
                                  if languages.reads_aloud(language, text)), None)
            if text_language is None:
                yield Check("speech", False, f"{language}: voice {voice} reads none of the "
                            f"languages the gateway has texts in ({', '.join(SPEECH_SAMPLES)})",
                            f"remove {language} from SPEECH_VOICES")
                continue
            try:
                info = audio.synthesize(SPEECH_SAMPLES[text_language], text_language,
                                        os.path.join(folder, f"{language}.wav"),
                                        rate=app.config["SPEECH_RATE"], voice=voice)
            except audio.SynthesisError as error:
                yield Check("speech", False, f"{language}: no speech with voice {voice} ({error})",
                            "install Debian's espeak-ng (apt-get install espeak-ng) and check "
                            "that `espeak-ng --voices` lists " + voice)
            else:
                yield Check("speech", True, f"{language}: voice {voice}, "
                            f"{info.duration_seconds:.1f} s of speech for the sample")


def files(app: Flask) -> Iterator[Check]:
    """Everything under instance/ and the media folder, and the signing key wherever it is
    kept, is the gateway user's alone: folders 0700, files 0600."""
    paths: list[str] = []
    for folder in (app.instance_path, app.config["MEDIA_DIR"]):
        for root, _, names in os.walk(folder):
            paths += [root, *(os.path.join(root, name) for name in names)]
    paths.append(app.config["SIGNING_KEY_PATH"])
    loose, foreign = [], []
    for path in dict.fromkeys(os.path.abspath(path) for path in paths):
        if not os.path.lexists(path) or os.path.islink(path):
            continue
        info = os.lstat(path)
        if info.st_uid != os.getuid():
            foreign.append(path)
        elif stat.S_IMODE(info.st_mode) & 0o077 and not stat.S_ISSOCK(info.st_mode):
            loose.append(path)
    if foreign:
        yield Check("files", False, f"{len(foreign)} file(s) belong to another user than the "
                    f"gateway's, e.g. {foreign[0]}",
                    f"run the gateway as their owner, or give them to its user: "
                    f"chown -R USER {_folder(foreign[0])}")
    if loose:
        yield Check("files", False, f"{len(loose)} file(s) others may read, e.g. {loose[0]} "
                    f"(residents' data and keys are kept there)",
                    f"chmod -R go-rwx {_folder(loose[0])}")
    if not foreign and not loose:
        yield Check("files", True, f"{app.instance_path}: the gateway user's alone")


def _folder(path: str) -> str:
    return path if os.path.isdir(path) else os.path.dirname(path)


def examine(app: Flask) -> list[Check]:
    """Every finding, connections last (they may take up to ``health.CHECK_SECONDS``)."""
    findings = [*configuration(app), *credentials(app), *voices(app), *files(app)]
    return findings + health.run(app)
