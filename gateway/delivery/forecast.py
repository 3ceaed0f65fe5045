"""When a notice will have reached its audience: the preview's reach forecast, and the one model
the reach benchmark (``bench/reach_curve.py``) checks against a real run.

The model, from approval:

* each channel's queue drains at its configured rate (``providers.expected_rate``), with no
  failures, retries or provider delay: a text (SMS, WeChat) reaches its resident when it is
  handed over;
* a call holds one of ``VOICE_CONCURRENT_CALLS`` lines for ``call_seconds`` — the speech, played
  once, then the wait for the resident's key (``VOICE_GATHER_SECONDS``) — and reaches its
  resident when it ends; so once the lines are busy calls go in rounds of ``lines`` a call
  length apart (lines ÷ call length a second), and the last is over one call length after it
  starts;
* each queue is in planned order: the plan walks the roster in one order and every channel's
  batches follow it, so a resident ``p`` of the way down the roster is ``p`` of the way down
  each of their channels' queues;
* a resident is reached at the earliest of their channels, ``min over c of start_c + p ×
  span_c``. So the share reached by ``t`` is, over each set of channels residents get, its
  residents × the furthest any of its channels has got by ``t`` (``share_at``).

The plan's own time is left out: its batches are queued, and sent, while it runs.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping, NamedTuple

from flask import current_app

from channels.registry import PERSONAL_CHANNELS
from gateway.delivery import media, providers
from messages import audio, speech

#: The points of the curve the preview shows: half, nine in ten, and everyone it can reach.
SHARES = (0.5, 0.9, 1.0)
TARGET_SHARE = 0.9
_BISECTIONS = 60


class Queue(NamedTuple):
    """A channel's queue: its first resident reached at ``start`` seconds, its last
    ``span`` seconds later."""
    start: float
    span: float

    def progress(self, seconds: float) -> float:
        """How far down the queue residents are reached by ``seconds`` (0 to 1)."""
        if seconds < self.start:
            return 0.0
        return 1.0 if self.span <= 0 else min(1.0, (seconds - self.start) / self.span)


def call_rate(rate: float, lines: int, call_seconds: float) -> float:
    """Calls placed a second in the long run: the rate, or fewer when every line is busy."""
    return min(rate, lines / call_seconds) if lines and call_seconds > 0 else rate


def call_span(count: int, rate: float, lines: int, call_seconds: float) -> float:
    """Seconds from the first call's start to the last's: calls start at the rate until every
    line is busy, then a round of ``lines`` calls each time the lines free up."""
    if call_rate(rate, lines, call_seconds) >= rate:
        return (count - 1) / rate
    rounds, rest = divmod(count - 1, lines)
    return rounds * call_seconds + rest / rate


def drain_queues(counts: Mapping[str, int], rates: Mapping[str, float], *, call_seconds: float = 0.0,
           lines: int = 0, starts: Mapping[str, float] | None = None) -> dict[str, Queue]:
    """Each channel's queue from its deliveries and rate (a call also from its length and the
    lines); ``starts``: a channel that begins later than approval (the bench's loudspeakers,
    after the plan)."""
    out = {}
    for channel, count in counts.items():
        if not count or not rates.get(channel):
            continue
        start = (starts or {}).get(channel, 0.0)
        if channel == "voice":
            out[channel] = Queue(start + call_seconds,
                                 call_span(count, rates[channel], lines, call_seconds))
        else:
            out[channel] = Queue(start, (count - 1) / rates[channel])
    return out


def share_at(sets: Mapping[frozenset, int], channel_queues: Mapping[str, Queue],
             seconds: float) -> float:
    """The share of the residents in ``sets`` (set of channels → residents) reached by
    ``seconds``."""
    total = sum(sets.values())
    if not total:
        return 0.0
    reached = sum(n * max((channel_queues[c].progress(seconds) for c in channels
                           if c in channel_queues), default=0.0)
                  for channels, n in sets.items())
    return reached / total


def reachable_share(sets: Mapping[frozenset, int], channel_queues: Mapping[str, Queue]) -> float:
    total = sum(sets.values())
    return sum(n for channels, n in sets.items()
               if any(c in channel_queues for c in channels)) / total if total else 0.0


def time_to(sets: Mapping[frozenset, int], channel_queues: Mapping[str, Queue],
            share: float) -> float | None:
    """Seconds until ``share`` of the residents are reached; ``None`` when it never is."""
    if not sets or share > reachable_share(sets, channel_queues) + 1e-9:
        return None
    low, high = 0.0, max((q.start + q.span for q in channel_queues.values()), default=0.0)
    target = share - 1e-9
    for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        low, high = (middle, high) if share_at(sets, channel_queues, middle) < target else (low, middle)
    return high


def personal_sets(groups: Iterable[tuple[Iterable[str], int]]) -> Counter:
    """(chosen channels, residents) of each group → residents per set of personal channels."""
    sets: Counter = Counter()
    for chosen, n in groups:
        sets[frozenset(c for c in chosen if c in PERSONAL_CHANNELS)] += n
    return sets


def call_seconds(config, speech_seconds: float) -> float:
    """How long a call holds its line: the speech once, then the wait for a key."""
    return speech_seconds + config["VOICE_GATHER_SECONDS"]


def speech_seconds(announcement) -> tuple[float, bool]:
    """How long the call's speech lasts in the announcement's own language, and whether that is
    measured: the speech file's length when it has been made (at submission, or by the first
    call), else the longest the script can plausibly take to say."""
    context = providers.render_context()
    language = announcement.language
    text = speech.script(announcement, language, context)
    rate = current_app.config["SPEECH_RATE"]
    if getattr(announcement, "id", None) is not None:
        try:
            info = audio.existing_audio(current_app.config["MEDIA_DIR"], announcement.id, language,
                                        text, rate=rate, voice=media.voice_for(None, language).name)
        except audio.SynthesisError:
            info = None
        if info is not None:
            return info.duration_seconds, True
    return audio.plausible_duration(text, language, rate)[1], False


def forecast(config, sets: Mapping[frozenset, int], counts: Mapping[str, int],
             announcement) -> dict:
    """The preview's reach forecast: seconds until half, nine in ten and all reachable residents
    are reached by a personal channel, and what it assumed."""
    rates = {c: providers.expected_rate(config, c) for c in counts if c in PERSONAL_CHANNELS}
    spoken, measured = speech_seconds(announcement) if counts.get("voice") else (0.0, False)
    holding = call_seconds(config, spoken) if counts.get("voice") else 0.0
    lines = config["VOICE_CONCURRENT_CALLS"]
    channel_queues = drain_queues({c: n for c, n in counts.items() if c in rates}, rates,
                            call_seconds=holding, lines=lines)
    reachable = reachable_share(sets, channel_queues)
    points = [{"share": round(min(share, reachable), 4),
               "seconds": _rounded(time_to(sets, channel_queues, min(share, reachable)))}
              for share in SHARES]
    return {
        "seconds_to_90_percent": _rounded(time_to(sets, channel_queues, TARGET_SHARE)),
        "points": points,
        "reachable_share": round(reachable, 4),
        "rates": {c: round(r, 3) for c, r in rates.items()},
        "call_seconds": round(holding, 1),
        "speech_seconds_measured": measured,
        "concurrent_calls": lines,
        "calls_per_second": round(call_rate(rates["voice"], lines, holding), 4)
        if "voice" in rates else None,
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)
