"""What an announcement will do before it is sent: counts, weak spots, time and cost.

Residents are grouped in SQL by everything the policy looks at, and the policy
(the same ``channels_for`` the plan job uses) is applied once per group, so the
preview of a county of a million is a few thousand policy calls.

A segment (town × age band × impairment × written language) is weak when some of its residents
have fewer than two independent paths (``reach.paths``: perceivable channels,
an SMS and a call to one handset counting once, the village loudspeaker only
for those who hear it); ``fewer_than_two_channels`` counts them, ``paths``
gives how many residents have 0, 1, 2 or 3 paths, and ``suggestions`` says
per village what would add a path (a loudspeaker, the WeChat account, a grid
worker's visit — naming the grid that has no worker, ``grid``) for how many. A resident whose
grid has a grid worker has the visit as a path (``reach.visit_planned``).

``texts`` says per language of the announcement's texts how many residents get it, and how
many of those read another language it has no text in (``fallback``, by their language in
``fallback_from``): each resident gets their written language's text when there is one,
else the announcement's own (``lifecycle.language_for``).
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import NamedTuple

from flask import current_app
from sqlalchemy import Connection, and_, case, func, select

from audiences.areas import prefix
from audiences.policy import Person, channels_for
from gateway.delivery import forecast, lifecycle, providers, public_channels, reach
from gateway.delivery.planner import planned_channels, speaker_villages, stream_residents
from gateway.store import grids
from gateway.store.roster import beneath
from gateway.store.schema import group_robots, residents
from messages import audio
from messages.languages import LanguageError, canonical
from messages.render import render

AGE_BANDS = ((0, 17, "0-17"), (18, 39, "18-39"), (40, 64, "40-64"), (65, 200, "65+"))
#: The values of a segment's ``age_band`` and ``impairment``.
AGE_BAND_LABELS = (*(label for _low, _high, label in AGE_BANDS), "unknown")
IMPAIRMENTS = ("none", "visual", "hearing", "visual+hearing")


def group_person(group) -> Person:
    """One group of residents (a row of ``_groups``), standing in for each of them."""
    return Person(group.has_phone or None, group.has_openid or None, group.birth_year,
                  group.visually_impaired, group.hearing_impaired, group.has_smartphone,
                  group.opt_out, group.pending_review)


def age_band(age: int | None) -> str:
    if age is None:
        return "unknown"
    return next(label for low, high, label in AGE_BANDS if low <= age <= high)


def impairment(visually: bool, hearing: bool) -> str:
    if visually and hearing:
        return "visual+hearing"
    return "visual" if visually else "hearing" if hearing else "none"


def segment_key(town: str, birth_year: int | None, visually: bool, hearing: bool,
                language: str, year: int) -> tuple[str, str, str, str]:
    """A resident's segment (town, age band, impairment, written language): the preview's
    groups and the disclosure report's rows are the same segments."""
    return (town, age_band(year - birth_year if birth_year else None),
            impairment(visually, hearing), language)


class _Context(NamedTuple):
    """What the preview and its thin residents both look at: the announcement's area codes,
    whether it is a drill, its channels, the year ages are counted in, loudspeakers by village,
    the grids with a grid worker."""
    codes: list[str]
    drill: bool
    allowed: set[str]
    year: int
    speakers: dict[str, int]
    worked: frozenset[str]


def _context(conn: Connection, announcement) -> _Context:
    codes = json.loads(announcement.areas)
    drill = announcement.status in ("test", "exercise")
    allowed = planned_channels(announcement, current_app.config)
    speakers = speaker_villages(conn, codes, drill) if "loudspeaker" in allowed else {}
    return _Context(codes, drill, allowed, (announcement.sent or announcement.created_at).year,
                    speakers, grids.worked_grids(conn))


def preview(conn: Connection, announcement, languages: list[str] | None = None) -> dict:
    """The preview of a stored announcement, or of a draft not stored yet with the
    ``languages`` of its texts (its own first)."""
    config = current_app.config
    codes, drill, allowed, year, speakers, worked = _context(conn, announcement)
    per_channel: dict[str, int] = defaultdict(int)
    segments: dict[tuple, dict] = {}
    written_in = languages or lifecycle.languages(conn, announcement)
    texts = {language: {"language": language, "residents": 0, "fallback": 0,
                        "fallback_from": defaultdict(int)} for language in written_in}
    residents_total = 0
    chosen_by_group = []
    for group in _groups(conn, codes, drill, also=(residents.c.language, residents.c.grid)):
        person = group_person(group)
        chosen = channels_for(person, severity=announcement.severity,
                              policy=current_app.extensions["policy"], available=allowed, year=year)
        residents_total += group.n
        chosen_by_group.append((chosen, group.n))
        _count_text(texts, group, written_in, announcement)
        for channel in chosen:
            per_channel[channel] += group.n
        key = segment_key(group.town, group.birth_year, group.visually_impaired,
                          group.hearing_impaired, group.language, year)
        segment = segments.setdefault(key, {"town": key[0], "age_band": key[1],
                                            "impairment": key[2], "language": key[3],
                                            "residents": 0,
                                            "channels": defaultdict(int),
                                            "paths": defaultdict(int),
                                            "fewer_than_two_channels": 0, "unreachable": 0,
                                            "suggestions": defaultdict(int)})
        segment["residents"] += group.n
        for channel in chosen:
            segment["channels"][channel] += group.n
        independent = reach.paths(person, chosen, bool(speakers.get(group.village)),
                                  reach.visit_planned(group.grid, worked))
        segment["paths"][len(independent)] += group.n
        if len(independent) < reach.ENOUGH_PATHS:
            segment["fewer_than_two_channels"] += group.n
            add = suggestion(person, "loudspeaker" in allowed and not speakers.get(group.village))
            grid = group.grid if add == "grid_worker" else None
            segment["suggestions"][(add, group.village, grid)] += group.n
        if not chosen:
            segment["unreachable"] += group.n
    if speakers:
        per_channel["loudspeaker"] = sum(speakers.values())
    robots = 0 if "wecom_robot" not in allowed or drill else conn.execute(
        select(func.count()).select_from(group_robots)
        .where(beneath(group_robots.c.area_code, codes))).scalar_one()
    if robots:
        per_channel["wecom_robot"] = robots
    for channel, _recipient, _address in public_channels.places(conn, announcement, config,
                                                                drill=drill):
        per_channel[channel] += 1
    sms = render(announcement, "sms", announcement.language, providers.render_context())
    summary = _summary(config, residents_total, per_channel, segments, speakers, sms.data,
                       _escalation(config, announcement))
    summary["reach_forecast"] = forecast.forecast(config, forecast.personal_sets(chosen_by_group),
                                                  per_channel, announcement)
    summary["voice_fallbacks"] = voice_fallbacks(conn, announcement, written_in)
    summary["texts"] = [{**text, "fallback_from": dict(sorted(text["fallback_from"].items()))}
                        for text in texts.values()]
    return summary


def _count_text(texts: dict, group, written_in, announcement) -> None:
    """Count a group of residents under the text they get, as falling back when it is not in
    their written language."""
    text = texts[lifecycle.language_for(group, written_in, announcement)]
    text["residents"] += group.n
    if group.language != text["language"]:
        text["fallback"] += group.n
        text["fallback_from"][group.language] += group.n


def voice_fallbacks(conn: Connection, announcement, languages: list[str] | None = None) -> list[dict]:
    """Residents the plan would call in another language than the one they speak, by
    (spoken language, language heard): their spoken language has no voice (``no_voice``),
    or its voice cannot read the text they get (``no_text``). The call reads the text in
    its own language's voice instead (``media.voice_for``, ``audio.choose_voice``)."""
    codes, drill, allowed, year, *_ = _context(conn, announcement)
    if "voice" not in allowed:
        return []
    voices = current_app.config["SPEECH_VOICES"]
    written_in = set(languages or lifecycle.languages(conn, announcement))
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    # Only residents who speak another language than they read, or one with no text or no
    # voice, can fall back: a few groups, each given to the policy as in ``preview``.
    candidates = (residents.c.spoken_language != residents.c.language) | \
        residents.c.spoken_language.not_in(sorted(written_in & set(voices)))
    for group in _groups(conn, codes, drill, also=(residents.c.language, residents.c.spoken_language),
                         where=candidates):
        chosen = channels_for(group_person(group), severity=announcement.severity,
                              policy=current_app.extensions["policy"], available=allowed, year=year)
        if "voice" not in chosen:
            continue
        text_language = lifecycle.language_for(group, written_in, announcement)
        voice = audio.choose_voice(group.spoken_language, text_language, voices)
        if voice.fallback:
            reason = "no_voice" if group.spoken_language not in voices else "no_text"
            counts[group.spoken_language, voice.language, reason] += group.n
    return [{"spoken_language": spoken, "heard_language": heard, "residents": n, "reason": reason}
            for (spoken, heard, reason), n in sorted(counts.items())]


def thin_residents(conn: Connection, announcement, town: str, band: str,
                   impaired: str, language: str | None = None) -> list[dict]:
    """The residents of one segment (``town`` × age ``band`` × ``impaired``, of written
    ``language`` when given) whom the
    announcement would reach by fewer than two independent paths, with their paths and what
    would add one (``suggestion``). Names and phones: for roles allowed personal data."""
    codes, drill, allowed, year, speakers, worked = _context(conn, announcement)
    found: dict[int, tuple] = {}
    for chunk in stream_residents(conn, [town], drill=drill):
        for person in chunk:
            if not any(person.area_code.startswith(prefix(code)) for code in codes) \
                    or age_band(year - person.birth_year if person.birth_year else None) != band \
                    or impairment(person.visually_impaired, person.hearing_impaired) != impaired \
                    or language not in (None, person.language):
                continue
            chosen = channels_for(person, severity=announcement.severity,
                                  policy=current_app.extensions["policy"], available=allowed,
                                  year=year)
            has_speaker = bool(speakers.get(person.area_code))
            independent = reach.paths(person, chosen, has_speaker,
                                      reach.visit_planned(person.grid, worked))
            if len(independent) < reach.ENOUGH_PATHS:
                found[person.id] = (sorted(independent), suggestion(
                    person, "loudspeaker" in allowed and not has_speaker))
    people = conn.execute(select(residents.c.id, residents.c.name, residents.c.phone,
                                 residents.c.area_code).where(residents.c.id.in_(list(found)))
                          .order_by(residents.c.area_code, residents.c.id)).all() if found else []
    return [{"id": p.id, "name": p.name, "phone": p.phone, "area_code": p.area_code,
             "paths": found[p.id][0], "add": found[p.id][1]} for p in people]


def segment_language(value: str | None) -> str | None | bool:
    """A segment's ``language`` as a link gives it: ``None`` when absent (every language), the
    canonical tag, or ``False`` when it is not one."""
    if not value:
        return None
    try:
        return value if canonical(value) == value else False
    except LanguageError:
        return False


def suggestion(person, speaker_missing: bool) -> str:
    """What would give a thin resident another path: a loudspeaker in their village (when they
    can hear one and it has none), following the WeChat account (a smartphone without it),
    or else a grid worker's visit (a worker for their grid, or a grid for them)."""
    if speaker_missing and reach.perceivable(person, "loudspeaker"):
        return "loudspeaker"
    if person.has_smartphone and not person.wechat_openid:
        return "wechat"
    return "grid_worker"


def _groups(conn: Connection, codes: list[str], drill: bool, *, also=(), where=None):
    """Residents grouped by what the policy looks at (and the columns ``also``), counted (``n``);
    ``where`` narrows them."""
    town = func.substr(residents.c.area_code, 1, 9).label("town")
    # A number marked invalid is no phone (gateway.store.roster.usable_phone).
    has_phone = case((residents.c.phone.is_(None) | residents.c.phone_invalid.is_not(None), ""),
                     else_="y").label("has_phone")
    has_openid = case((residents.c.wechat_openid.is_(None), ""), else_="y").label("has_openid")
    columns = (town, residents.c.area_code.label("village"), residents.c.birth_year,
               residents.c.visually_impaired, residents.c.hearing_impaired,
               residents.c.has_smartphone, has_phone, has_openid, residents.c.opt_out,
               residents.c.pending_review, *also)
    condition = and_(beneath(residents.c.area_code, codes), residents.c.retired_at.is_(None))
    if where is not None:
        condition = and_(condition, where)
    if drill:
        condition = and_(condition, residents.c.test_audience.is_(True))
    return conn.execute(select(*columns, func.count().label("n")).where(condition)
                        .group_by(*columns)).all()


def _escalation(config, announcement) -> dict:
    """What happens when a channel does not get through, as the approver should know it."""
    return {
        "fallback_order": list(current_app.extensions["policy"].fallback),
        "tries_per_delivery": config["MAX_ATTEMPTS"],
        "calls_per_resident": config["VOICE_MAX_ATTEMPTS"],
        "minutes_between_calls": round(config["VOICE_RETRY_DELAY_SECONDS"] / 60, 1),
        "vulnerable_must_confirm": announcement.severity in reach.CONFIRM_SEVERITIES,
    }


def _summary(config, residents_total: int, per_channel: dict, segments: dict,
             speakers: dict, sms: dict, escalation: dict) -> dict:
    estimate = {channel: round(count / providers.expected_rate(config, channel), 2)
                for channel, count in per_channel.items()}
    ordered = sorted(segments.values(),
                     key=lambda s: (s["town"], s["age_band"], s["impairment"], s["language"]))
    for segment in ordered:
        segment["channels"] = dict(segment["channels"])
        segment["paths"] = {str(n): count for n, count in sorted(segment["paths"].items())}
        segment["suggestions"] = [{"add": add, "village": village, "grid": grid, "residents": count}
                                  for (add, village, grid), count in sorted(
                                      segment["suggestions"].items(),
                                      key=lambda s: (s[0][1], s[0][0], s[0][2] or ""))]
    return {
        "residents": residents_total,
        "deliveries": dict(per_channel),
        "villages_with_loudspeaker": sum(1 for n in speakers.values() if n),
        "segments": ordered,
        "weak_segments": [s for s in ordered if s["fewer_than_two_channels"]],
        "seconds_to_complete": {"per_channel": estimate,
                                "overall": max(estimate.values(), default=0.0)},
        "sms": {"segments_per_message": sms["segments"], "encoding": sms["encoding"],
                "characters": sms["characters"], "shortened": sms["shortened"]},
        "cost": {"sms": round(per_channel.get("sms", 0) * sms["segments"] * config["SMS_PRICE"], 2),
                 "voice": round(per_channel.get("voice", 0) * config["VOICE_PRICE"], 2)},
        "escalation": escalation,
    }
