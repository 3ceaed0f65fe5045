"""Which channels reach a resident: ordered rules from a data file, applied by a pure function.

The preview and the plan job both call ``channels_for``, so what the approver is
shown is what is sent. Loudspeakers are not in here: they reach villages, not
people, and every registered device in a targeted area gets one delivery.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from typing import Any, Collection, Iterable

from channels.registry import PERSONAL_CHANNELS

ADDRESS_FIELD = {"sms": "phone", "voice": "phone", "wechat": "wechat_openid"}
_CONDITION_KEYS = {"severity", "visually_impaired", "hearing_impaired", "has_smartphone",
                   "min_age", "max_age", "any"}
_RULE_KEYS = {"name", "when", "channels", "first_of", "continue", "override_opt_outs"}


class PolicyError(ValueError):
    """The rules file is wrong; the message says where."""


@dataclass(frozen=True)
class Person:
    """Everything the policy looks at of a resident, and nothing else.

    A database row with these columns serves as well: the planner and escalation
    pass ``residents`` rows, the preview one ``Person`` per group of residents.
    """

    phone: str | None
    wechat_openid: str | None
    birth_year: int | None
    visually_impaired: bool
    hearing_impaired: bool
    has_smartphone: bool
    opt_out: Collection[str] | str
    #: Registered themselves and not yet approved: see ``channels_for``.
    pending_review: bool = False


#: The resident columns the policy reads (see ``Person``).
PERSON_FIELDS = tuple(f.name for f in fields(Person))


def person_key(person: Person) -> tuple:
    """Residents with the same key get the same channels in any one year (the key has the birth
    year, cheaper than the age), so the policy runs once per key."""
    return (person.birth_year, person.visually_impaired, person.hearing_impaired,
            person.has_smartphone, bool(person.phone), bool(person.wechat_openid), person.opt_out,
            person.pending_review)


@dataclass(frozen=True)
class Condition:
    severity: frozenset[str] | None = None
    visually_impaired: bool | None = None
    hearing_impaired: bool | None = None
    has_smartphone: bool | None = None
    min_age: int | None = None
    max_age: int | None = None
    any: tuple["Condition", ...] = ()

    def matches(self, person: Person, severity: str, age: int | None) -> bool:
        if self.severity is not None and severity not in self.severity:
            return False
        for flag in ("visually_impaired", "hearing_impaired", "has_smartphone"):
            wanted = getattr(self, flag)
            if wanted is not None and bool(getattr(person, flag)) != wanted:
                return False
        if self.min_age is not None and (age is None or age < self.min_age):
            return False
        if self.max_age is not None and (age is None or age > self.max_age):
            return False
        return not self.any or any(c.matches(person, severity, age) for c in self.any)


@dataclass(frozen=True)
class Rule:
    name: str
    when: Condition
    channels: tuple[str, ...] = ()
    first_of: tuple[str, ...] = ()
    then_continue: bool = False
    override_opt_outs: bool = False


@dataclass(frozen=True)
class Never:
    name: str
    when: Condition
    channels: frozenset[str]


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    never: tuple[Never, ...] = ()
    fallback: tuple[str, ...] = field(default=PERSONAL_CHANNELS)


def load_policy(path: str) -> Policy:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise PolicyError(f"cannot read the channel policy {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"the channel policy {path} is not valid TOML: {error}") from None
    try:
        return parse_policy(data)
    except PolicyError as error:
        raise PolicyError(f"{path}: {error}") from None


def parse_policy(data: dict[str, Any]) -> Policy:
    unknown = set(data) - {"rule", "never", "fallback"}
    if unknown:
        raise PolicyError(f"unknown top-level key {sorted(unknown)[0]!r}")
    rules = tuple(_rule(entry, index) for index, entry in enumerate(data.get("rule", []), 1))
    if not rules:
        raise PolicyError("there is no [[rule]]; at least one is needed")
    never = tuple(_never(entry, index) for index, entry in enumerate(data.get("never", []), 1))
    fallback = _channel_list(data.get("fallback", list(PERSONAL_CHANNELS)), "fallback")
    return Policy(rules, never, fallback)


def _rule(entry: Any, index: int) -> Rule:
    where = f"rule {index}"
    if not isinstance(entry, dict):
        raise PolicyError(f"{where} is not a table")
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    channels = _channel_list(entry.get("channels", []), f"{where}.channels")
    first_of = _channel_list(entry.get("first_of", []), f"{where}.first_of")
    if bool(channels) == bool(first_of):
        raise PolicyError(f"{where}: give exactly one of 'channels' and 'first_of'")
    return Rule(name=str(entry.get("name", where)), when=_condition(entry.get("when", {}), where),
                channels=channels, first_of=first_of,
                then_continue=_bool(entry, "continue", where),
                override_opt_outs=_bool(entry, "override_opt_outs", where))


def _never(entry: Any, index: int) -> Never:
    where = f"never {index}"
    if not isinstance(entry, dict) or set(entry) - {"name", "when", "channels"}:
        raise PolicyError(f"{where}: expected a table with name, when and channels")
    channels = _channel_list(entry.get("channels", []), f"{where}.channels")
    return Never(str(entry.get("name", where)), _condition(entry.get("when", {}), where),
                 frozenset(channels))


def _condition(value: Any, where: str) -> Condition:
    if not isinstance(value, dict):
        raise PolicyError(f"{where}.when is not a table")
    unknown = set(value) - _CONDITION_KEYS
    if unknown:
        raise PolicyError(f"{where}.when: unknown condition {sorted(unknown)[0]!r}")
    severity = value.get("severity")
    if severity is not None:
        if not isinstance(severity, list) or not all(isinstance(s, str) for s in severity):
            raise PolicyError(f"{where}.when.severity must be a list of severities")
        severity = frozenset(s.lower() for s in severity)
    flags = {}
    for flag in ("visually_impaired", "hearing_impaired", "has_smartphone"):
        if flag in value and not isinstance(value[flag], bool):
            raise PolicyError(f"{where}.when.{flag} must be true or false")
        flags[flag] = value.get(flag)
    for bound in ("min_age", "max_age"):
        if bound in value and (not isinstance(value[bound], int) or isinstance(value[bound], bool)):
            raise PolicyError(f"{where}.when.{bound} must be a whole number of years")
    alternatives = value.get("any", [])
    if not isinstance(alternatives, list):
        raise PolicyError(f"{where}.when.any must be a list of condition tables")
    return Condition(severity=severity, min_age=value.get("min_age"), max_age=value.get("max_age"),
                     any=tuple(_condition(c, f"{where}.when.any") for c in alternatives), **flags)


def _channel_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PolicyError(f"{where} must be a list of channel names")
    for name in value:
        if name not in PERSONAL_CHANNELS:
            raise PolicyError(f"{where}: {name!r} is not one of {', '.join(PERSONAL_CHANNELS)}")
    return tuple(value)


def _bool(entry: dict, key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise PolicyError(f"{where}.{key} must be true or false")
    return value


def age_of(person: Person, year: int) -> int | None:
    return year - person.birth_year if person.birth_year else None


def opted_out(person: Person) -> frozenset[str]:
    value = person.opt_out or ()
    if isinstance(value, str):
        value = value.split(";")
    return frozenset(name.strip() for name in value if name.strip())


def address_of(person: Person, channel: str) -> str | None:
    """Where a personal channel reaches this person: their phone, or their WeChat openid."""
    return getattr(person, ADDRESS_FIELD[channel])


def has_address(person: Person, channel: str) -> bool:
    return bool(address_of(person, channel))


def channels_for(person: Person, *, severity: str, policy: Policy, available: Iterable[str],
                 year: int) -> tuple[str, ...]:
    """The personal channels that reach this person for an announcement of this severity.

    ``available`` are the channels the announcement allows and the gateway can
    send over. A channel is dropped when the person has no address for it, has
    opted out (unless the rule overrides opt-outs) or a ``never`` entry forbids it.

    A resident pending review (self-registered, not yet approved) gave a number for
    emergencies: an SMS for an extreme notice and nothing else, whatever the rules say,
    so needs nobody has checked yet choose nothing.
    """
    if person.pending_review:
        return ("sms",) if severity == "extreme" and "sms" in set(available) \
            and has_address(person, "sms") else ()
    age = age_of(person, year)
    allowed = set(available) - _forbidden(person, severity, age, policy)
    chosen: list[str] = []
    opted = opted_out(person)
    for rule in policy.rules:
        if not rule.when.matches(person, severity, age):
            continue
        usable = [c for c in (rule.channels or rule.first_of)
                  if c in allowed and has_address(person, c)
                  and (rule.override_opt_outs or c not in opted)]
        for channel in (usable[:1] if rule.first_of else usable):
            if channel not in chosen:
                chosen.append(channel)
        if not rule.then_continue:
            break
    return tuple(chosen)


def next_channel(person: Person, *, severity: str, policy: Policy, available: Iterable[str],
                 already: Collection[str], year: int) -> str | None:
    """The channel to try after a permanent failure, never one already planned (none for a
    resident pending review: SMS is their only channel)."""
    if person.pending_review:
        return None
    age = age_of(person, year)
    allowed = set(available) - _forbidden(person, severity, age, policy)
    opted = opted_out(person) if severity != "extreme" else frozenset()
    for channel in policy.fallback:
        if (channel in allowed and channel not in already and channel not in opted
                and has_address(person, channel)):
            return channel
    return None


def _forbidden(person: Person, severity: str, age: int | None, policy: Policy) -> set[str]:
    forbidden: set[str] = set()
    for entry in policy.never:
        if entry.when.matches(person, severity, age):
            forbidden |= entry.channels
    return forbidden
