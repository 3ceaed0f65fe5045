"""The languages village loudspeakers speak, in the order they play them (#19, item 5).

A village (or any area above it: a town, the county) and a single device may each have an
ordered list of spoken languages, kept as canonical tags separated by spaces ("zh yue",
migration 0012). A device speaks its own list when it has one, else that of the nearest of
its village, town and county that has one, else nothing is set and a loudspeaker plays the
announcement's own language, as it did before lists existed.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from sqlalchemy import Connection, select, update

from audiences import areas as area_codes
from gateway.store import audit
from gateway.store.schema import areas, devices
from messages.languages import LanguageError, canonical

#: Each language plays the whole notice, and the longest notice in three languages signs to
#: about 51 KB of the 64 KB a controller reads (``protocol.MAX_COMMAND_BYTES``).
MAX_LANGUAGES = 3
SEPARATOR = " "


class SpeakerLanguageError(ValueError):
    """A list of spoken languages, an area or a device that cannot be used."""


def parse_languages(tags: Iterable[str]) -> tuple[str, ...]:
    """Canonical tags in the order given, each once (``cmn yue`` → ``("zh", "yue")``); a tag
    may also hold several separated by spaces or commas."""
    found: list[str] = []
    for tag in (part for text in tags for part in text.replace(",", " ").split()):
        try:
            language = canonical(tag)
        except LanguageError as error:
            raise SpeakerLanguageError(str(error)) from None
        if language not in found:
            found.append(language)
    if len(found) > MAX_LANGUAGES:
        raise SpeakerLanguageError(f"{len(found)} languages; a loudspeaker plays at most "
                                   f"{MAX_LANGUAGES} in turn")
    return tuple(found)


def stored(languages: Sequence[str]) -> str | None:
    return SEPARATOR.join(languages) or None


def read(value: str | None) -> tuple[str, ...]:
    return tuple(value.split(SEPARATOR)) if value else ()


def set_area_languages(conn: Connection, area_code: str, languages: Sequence[str],
                       actor: str) -> str:
    """Set (or with none, clear) the spoken languages of an area's loudspeakers; its code."""
    try:
        code = area_codes.normalize(area_code)
    except area_codes.AreaError as error:
        raise SpeakerLanguageError(str(error)) from None
    changed = conn.execute(update(areas).where(areas.c.code == code)
                           .values(spoken_languages=stored(languages))).rowcount
    if not changed:
        raise SpeakerLanguageError(f"area {code} is not in the area registry")
    audit.record(conn, actor, "speaker_languages", f"area:{code}", {"languages": list(languages)})
    return code


def set_device_languages(conn: Connection, device_id: str, languages: Sequence[str],
                         actor: str) -> None:
    """Set (or with none, clear: it takes its area's) the spoken languages of one device."""
    changed = conn.execute(update(devices).where(devices.c.device_id == device_id.strip())
                           .values(spoken_languages=stored(languages))).rowcount
    if not changed:
        raise SpeakerLanguageError(f"there is no device {device_id!r}")
    audit.record(conn, actor, "speaker_languages", f"device:{device_id.strip()}",
                 {"languages": list(languages)})


def area_languages(conn: Connection, codes: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The languages set on each of these areas or above it (the nearest wins); areas with
    none set are left out."""
    codes = set(codes)
    lineage = {code: _lineage(code) for code in codes}
    wanted = {ancestor for chain in lineage.values() for ancestor in chain}
    own = {row.code: read(row.spoken_languages) for row in conn.execute(
        select(areas.c.code, areas.c.spoken_languages)
        .where(areas.c.code.in_(sorted(wanted)), areas.c.spoken_languages.is_not(None)))}
    found = {}
    for code, chain in lineage.items():
        nearest = next((own[ancestor] for ancestor in chain if ancestor in own), None)
        if nearest:
            found[code] = nearest
    return found


def device_languages(conn: Connection, device_ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """Devices (by row id) → the languages they speak in order: their own, else their area's
    (``area_languages``); devices with neither are left out."""
    rows = conn.execute(select(devices.c.id, devices.c.area_code, devices.c.spoken_languages)
                        .where(devices.c.id.in_(list(device_ids)))).all()
    inherited = area_languages(conn, {row.area_code for row in rows
                                      if not row.spoken_languages})
    found = {}
    for row in rows:
        languages = read(row.spoken_languages) or inherited.get(row.area_code, ())
        if languages:
            found[row.id] = languages
    return found


def _lineage(code: str) -> list[str]:
    """The area itself, then its town and county (12, 9 and 6 digits), nearest first."""
    return [code[:length] for length in (12, 9, 6) if len(code) >= length]
