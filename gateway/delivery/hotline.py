"""The notice hotline: anyone calls the office's number and hears the notices in force.

Twilio posts each step of the call to ``/webhooks/twilio/hotline``; ``answer`` reads the
caller's keys and the state in the URL's query and returns the next TwiML. Nothing is kept
in the server between requests: the state (``State``) travels in the ``<Gather>`` action
URLs, which Twilio signs with the rest of the request (so it cannot be changed without the
auth token), and every value is checked again on the way back; one that does not hold starts
the call over instead of failing.

* A caller whose number (``From``) is on the roster hears the notices for their area at once,
  in their language, each with the recording the calls and loudspeakers use in their voice.
* Anyone else chooses the area from a spoken menu made from the area registry: 1 for all of
  the area offered, then one key per area beneath it (the county's towns, then the town's
  villages), or hears the notices for the whole area.
* The notices for an area are the live ones (approved, not expired, not drills, not
  withdrawal notices) whose target areas include it, the most severe first and, among equal
  severities, the newest first. After each: 1 confirms (a roster caller only: their delivery
  of the notice is moved to ``confirmed`` through ``outcomes``, as a keypress on an outgoing
  call is), 2 repeats, 3 goes to the next, 0 connects to ``HOTLINE_DUTY_NUMBER`` when set.
  A key works while the notice plays too (it is heard inside the ``<Gather>``).
* With none in force the call says so, with when the last one for the area was issued.

No speech is synthesized during a call (a caller is waiting): a notice whose recording was
not made yet (no call or loudspeaker has needed it) is read by Twilio's own voice instead.
Each notice a call begins to hear is counted once (``gateway.store.hotline``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from types import SimpleNamespace
from urllib.parse import urlencode

from flask import current_app
from sqlalchemy import Connection, select

from audiences import areas as area_codes
from channels.base import StatusUpdate
from channels.registry import PERSONAL_CHANNELS
from channels.twilio_hotline import Ask, Spoken, pressed, twiml
from gateway.delivery import lifecycle, media, outcomes, providers
from gateway.store import hotline as calls
from gateway.store import ledger
from gateway.store.db import as_utc, engine, utcnow
from gateway.store.schema import announcements, areas, deliveries, residents
from messages import hotline as prompts
from messages.announcement import SEVERITIES

log = logging.getLogger(__name__)
PATH = "/webhooks/twilio/hotline"
#: Questions left unanswered in a row before the call says goodbye.
UNANSWERED_BEFORE_GOODBYE = 2
#: Which of a resident's deliveries a 1 on the hotline confirms: a call first, as if they had
#: pressed 1 on it, then the SMS, then WeChat.
CONFIRMS_FIRST = ("voice", "sms", "wechat")
#: Notices read per query while looking for the last one issued for an area.
LAST_ISSUED_PAGE = 200
STEPS = ("menu", "notice", "idle")


@dataclass(frozen=True)
class State:
    """Where the call is: ``step`` ``""`` (just came in), ``menu`` (choosing among the areas
    beneath ``area``; ``""`` the top of the registry), ``notice`` (heard ``notice`` of
    ``area``'s notices) or ``idle`` (heard that ``area`` has none); ``unanswered``
    questions in a row."""

    step: str = ""
    area: str = ""
    notice: int = 0
    unanswered: int = 0

    def url(self) -> str:
        query = urlencode({"step": self.step, "area": self.area, "notice": self.notice,
                           "unanswered": self.unanswered})
        return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}{PATH}?{query}"


def read_state(args) -> State:
    """The state in a request's query; a fresh call when it is missing or does not hold."""
    step, area = args.get("step", ""), args.get("area", "")
    try:
        if area:
            area = area_codes.normalize(area)
        state = State(step, area, int(args.get("notice", "0")), int(args.get("unanswered", "0")))
    except (ValueError, area_codes.AreaError):
        return State()
    if (step not in STEPS or not 0 <= state.unanswered < UNANSWERED_BEFORE_GOODBYE
            or not 0 <= state.notice <= lifecycle.MAX_ID or (step != "menu" and not area)):
        return State()
    return state


@dataclass(frozen=True)
class Caller:
    """Who is calling: a roster resident (with their languages and area) or anyone."""

    resident_id: int | None = None
    area_code: str | None = None
    language: str = "zh"  # what they read: picks the notice's text
    spoken_language: str | None = None  # what they hear: the recording's voice, the prompts

    @property
    def prompts(self) -> str:
        return prompts.prompt_language(self.spoken_language or self.language)


def caller(conn: Connection, number: str | None) -> Caller:
    """The roster resident with this phone number (the first one when a family shares it)."""
    if not number:
        return Caller()
    row = conn.execute(select(residents.c.id, residents.c.area_code, residents.c.language,
                              residents.c.spoken_language)
                       .where(residents.c.phone == number, residents.c.retired_at.is_(None))
                       .order_by(residents.c.id).limit(1)).first()
    if row is None:
        return Caller()
    return Caller(row.id, row.area_code, row.language, row.spoken_language)


def answer(params, args) -> str:
    """The TwiML for one step of a hotline call: ``params`` Twilio's form, ``args`` the query."""
    keys, call_sid = pressed(params), (params.get("CallSid") or "")[:64]
    state = read_state(args)
    with engine().begin() as conn:
        who = caller(conn, params.get("From"))
        call = _Call(conn, who, call_sid)
        reply = call.reply(state, keys)
    if call.to_confirm is not None:
        confirm(who.resident_id, call.to_confirm)
    return reply


def confirm(resident_id: int, announcement_id: int) -> bool:
    """Move the resident's delivery of the notice to ``confirmed`` (a call first); whether one
    moved. A resident with no delivery that may still move (none planned, or all failed) is
    thanked all the same, and the hotline's record keeps the press."""
    with engine().connect() as conn:
        rows = conn.execute(select(deliveries.c.id, deliveries.c.channel, deliveries.c.status)
                            .where(deliveries.c.announcement_id == announcement_id,
                                   deliveries.c.recipient_id == resident_id,
                                   deliveries.c.channel.in_(PERSONAL_CHANNELS))).all()
    movable = sorted((row for row in rows if ledger.may_move(row.status, "confirmed")),
                     key=lambda row: _preference(row.channel))
    if not movable:
        log.info("a hotline confirmation of announcement %s by resident %s has no delivery to "
                 "move", announcement_id, resident_id)
        return False
    confirmation = StatusUpdate("confirmed", extra={"outcome": "confirmed on the hotline"})
    return outcomes.apply(movable[0].id, confirmation)


def _preference(channel: str) -> int:
    return CONFIRMS_FIRST.index(channel) if channel in CONFIRMS_FIRST else len(CONFIRMS_FIRST)


def notices_for(conn: Connection, area_code: str) -> list:
    """The live notices whose target areas include ``area_code``, the most severe first and,
    among equal severities, the newest."""
    live = [notice for notice in lifecycle.in_force(conn, ("actual",))
            if notice.sent and covers(json.loads(notice.areas), area_code)]
    return sorted(live, key=lambda notice: (_severity_rank(notice.severity),
                                            -as_utc(notice.sent).timestamp()))


def covers(targets: list[str], area_code: str) -> bool:
    """Whether a notice for ``targets`` is meant for someone in ``area_code``."""
    return bool(area_code) and any(area_code.startswith(area_codes.prefix(code))
                                   for code in targets)


def last_issued(conn: Connection, area_code: str):
    """When the last real notice for the area was issued (any state since), or ``None``."""
    offset = 0
    while True:
        page = conn.execute(select(announcements.c.sent, announcements.c.areas)
                            .where(announcements.c.sent.is_not(None),
                                   announcements.c.status == "actual")
                            .order_by(announcements.c.sent.desc(), announcements.c.id.desc())
                            .offset(offset).limit(LAST_ISSUED_PAGE)).all()
        for row in page:
            if covers(json.loads(row.areas), area_code):
                return as_utc(row.sent)
        if len(page) < LAST_ISSUED_PAGE:
            return None
        offset += LAST_ISSUED_PAGE


def _is_area_code(code: str) -> bool:
    """Whether the menu can place ``code`` (a registry row of another kind is left out)."""
    try:
        return area_codes.normalize(code) == code
    except area_codes.AreaError:
        return False


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


class _Call:
    """One request of a call: reads what it needs and says what comes next."""

    def __init__(self, conn: Connection, who: Caller, call_sid: str):
        config = current_app.config
        self.conn, self.caller, self.call_sid = conn, who, call_sid
        self.language = who.prompts
        self.duty = config["HOTLINE_DUTY_NUMBER"]
        self.gather_seconds = config["VOICE_GATHER_SECONDS"]
        self.to_confirm: int | None = None  # confirmed after this request's transaction

    def reply(self, state: State, keys: str) -> str:
        if state.step == "menu":
            return self.on_menu(state, keys)
        if state.step == "notice":
            return self.on_notice(state, keys)
        if state.step == "idle":
            return self.dial() if keys == "0" and self.duty else self.goodbye()
        welcome = [self.say(prompts.welcome(self.language,
                                            providers.render_context().office_name))]
        if self.caller.area_code:
            return self.listen(self.caller.area_code, welcome)
        return self.menu(State("menu"), welcome)

    # --- the menu of areas ------------------------------------------------------------

    def menu(self, state: State, heard: list[Spoken]) -> str:
        node, whole, choices = self.choices(state.area)
        if not choices:
            return self.listen(node, heard)
        keys = len(choices) + (1 if whole else 0)
        text = prompts.menu(self.language, whole, [name for _, name in choices],
                            duty=bool(self.duty))
        return twiml(heard, ask=self.ask(text, replace(state, area=node), digits=len(str(keys))))

    def choices(self, area: str) -> tuple[str, str | None, list[tuple[str, str]]]:
        """(the area offered, its name for "all of it" or ``None`` at the top, the areas
        beneath it in the registry); the top is the registry's one top area when it has one."""
        rows = self.conn.execute(select(areas.c.code, areas.c.name))
        registry = {code: name for code, name in rows if _is_area_code(code)}
        parents = {code: area_codes.parent(code) for code in registry}
        if not area:
            tops = sorted(code for code, above in parents.items() if above not in registry)
            if len(tops) != 1:
                return "", None, [(code, registry[code]) for code in tops]
            area = tops[0]
        beneath = sorted(code for code, above in parents.items() if above == area)
        return area, registry.get(area, area), [(code, registry[code]) for code in beneath]

    def on_menu(self, state: State, keys: str) -> str:
        if not keys:
            return self.unanswered(state, lambda next_state: self.menu(next_state, []))
        if keys == "0" and self.duty:
            return self.dial()
        node, whole, choices = self.choices(state.area)
        options = ([node] if whole else []) + [code for code, _ in choices]
        if keys.isdigit() and 1 <= int(keys) <= len(options):
            chosen = options[int(keys) - 1]
            if chosen != node and self.choices(chosen)[2]:
                return self.menu(State("menu", chosen), [])
            return self.listen(chosen, [])
        return self.menu(replace(state, unanswered=0), [self.say(prompts.prompt(self.language,
                                                                                "invalid"))])

    # --- the notices of an area ------------------------------------------------------

    def listen(self, area: str, heard: list[Spoken]) -> str:
        notices = notices_for(self.conn, area)
        if not notices:
            return self.idle(area, heard)
        if len(notices) > 1:
            heard = heard + [self.say(prompts.count(self.language, self.area_name(area),
                                                    len(notices)))]
        return self.play(area, notices, 0, heard)

    def play(self, area: str, notices: list, index: int, heard: list[Spoken]) -> str:
        notice = notices[index]
        calls.record_heard(self.conn, self.call_sid, notice.id, area, self.caller.resident_id)
        if len(notices) > 1:
            heard = heard + [self.say(prompts.position(self.language, index + 1, len(notices)))]
        return twiml(heard, ask=self.ask(self.after_notice(), State("notice", area, notice.id),
                                         first=[self.recording(notice)]))

    def recording(self, notice) -> Spoken:
        """The notice as the calls speak it, in the caller's language when it has a text in it:
        the recording made for calls or loudspeakers, or Twilio's speech when there is none."""
        language = lifecycle.language_for(SimpleNamespace(language=self.caller.language),
                                          lifecycle.languages(self.conn, notice), notice)
        text = lifecycle.in_language(self.conn, notice, language)
        rendered = media.rendered_for(text, "voice", language, self.caller.spoken_language,
                                      synthesize=False)
        return Spoken(rendered.text, language, rendered.data.get("audio_url"))

    def on_notice(self, state: State, keys: str) -> str:
        notices = notices_for(self.conn, state.area)
        index = next((i for i, notice in enumerate(notices) if notice.id == state.notice), None)
        if index is None:  # it ended (withdrawn, expired) while the caller listened
            return self.listen(state.area, [])
        is_last = index + 1 == len(notices)
        if keys == "1" and self.caller.resident_id is not None:
            self.to_confirm = state.notice
            calls.record_confirmed(self.conn, self.call_sid, state.notice)
            thanks = [self.say(prompts.prompt(self.language, "confirmed"))]
            return self.goodbye(thanks) if is_last else self.play(state.area, notices, index + 1,
                                                                   thanks)
        if keys == "2":
            return self.play(state.area, notices, index, [])
        if keys == "3":
            if is_last:
                return self.question(replace(state, unanswered=0),
                                     [self.say(prompts.prompt(self.language, "last"))])
            return self.play(state.area, notices, index + 1, [])
        if keys == "0" and self.duty:
            return self.dial()
        if not keys:
            return self.unanswered(state, lambda next_state: self.question(next_state, []))
        return self.question(replace(state, unanswered=0),
                             [self.say(prompts.prompt(self.language, "invalid"))])

    def after_notice(self) -> str:
        return prompts.choices(self.language, confirm=self.caller.resident_id is not None,
                               duty=bool(self.duty))

    def question(self, state: State, heard: list[Spoken]) -> str:
        """The keys after a notice again, without the notice."""
        return twiml(heard, ask=self.ask(self.after_notice(), state))

    def idle(self, area: str, heard: list[Spoken]) -> str:
        said = heard + [self.say(prompts.no_notice(self.language, self.area_name(area),
                                                   last_issued(self.conn, area),
                                                   providers.render_context()))]
        if not self.duty:
            return self.goodbye(said)
        return twiml(said, ask=self.ask(prompts.prompt(self.language, "duty"),
                                        State("idle", area)))

    def area_name(self, area: str) -> str | None:
        return self.conn.execute(select(areas.c.name).where(areas.c.code == area)).scalar()

    # --- what every step shares -------------------------------------------------------

    def unanswered(self, state: State, again) -> str:
        if state.unanswered + 1 >= UNANSWERED_BEFORE_GOODBYE:
            return self.goodbye()
        return again(replace(state, unanswered=state.unanswered + 1))

    def say(self, text: str) -> Spoken:
        return Spoken(text, self.language)

    def ask(self, text: str, state: State, *, digits: int = 1, first: list[Spoken] = ()) -> Ask:
        """Ask ``text`` (after ``first``, which a key also interrupts), answered at ``state``."""
        return Ask([*first, self.say(text)], state.url(), digits, self.gather_seconds)

    def dial(self) -> str:
        return twiml([self.say(prompts.prompt(self.language, "connecting"))], dial=self.duty)

    def goodbye(self, heard: list[Spoken] = ()) -> str:
        return twiml([*heard, self.say(prompts.prompt(self.language, "goodbye"))])
