"""The one small interface every delivery channel implements.

A channel knows how to talk to one provider. It never formats text (``messages``
does), never touches the ledger (``gateway`` does) and never imports Flask. It is
built from a plain mapping of settings, so the worker, the tests and the
benchmarks construct it the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence


class ChannelError(Exception):
    """A send that did not go through.

    ``permanent`` errors are final for this delivery (an invalid number, a
    resident who does not follow the account); transient ones are retried with
    backoff. ``code`` is the provider's own error code, kept for the ledger.
    ``retry_after`` (seconds) lets a provider that said "slow down" set the wait.
    ``pauses_channel`` says the whole sending account is blocked (a daily quota
    used up) until ``retry_after``: the gateway stops the channel, not one send.
    ``address_invalid`` (always permanent) says the address itself is dead (a
    phone number that does not exist): no channel using it is tried again.
    """

    def __init__(self, message: str, *, permanent: bool = False, code: str | None = None,
                 retry_after: float | None = None, pauses_channel: bool = False,
                 address_invalid: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent or address_invalid
        self.code = code
        self.retry_after = retry_after
        self.pauses_channel = pauses_channel
        self.address_invalid = address_invalid

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" if self.code else self.message


@dataclass(frozen=True)
class Outgoing:
    """One delivery as a channel sees it: where it goes and what it says.

    ``rendered`` is the ``messages.Rendered`` for this channel and language.
    ``callback_url`` is where the provider should report status for this very
    delivery (it carries the delivery id, so a callback can never race the
    ledger's record of the provider id).
    """

    delivery_id: int
    announcement_id: int
    address: str
    rendered: Any
    callback_url: str | None = None


@dataclass(frozen=True)
class Receipt:
    """What the provider said when it accepted a message.

    ``status`` is the ledger status the delivery may move to now: ``sent`` for a
    provider that reports delivery later, ``delivered`` for one whose acceptance
    is the delivery (the outbox, a group robot).
    """

    provider_id: str | None = None
    status: str = "sent"
    detail: str = ""


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's later word on one delivery, parsed from a callback.

    The channel's module parses it (``twilio_sms.parse_callback``) with no channel
    object: a webhook should not have to build a provider's client to read a form.
    A failure's ``permanent``, ``address_invalid``, ``pauses_channel`` and
    ``retry_after`` mean what they mean on ``ChannelError``.
    """

    status: str
    provider_id: str | None = None
    error: str | None = None
    permanent: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)
    address_invalid: bool = False
    pauses_channel: bool = False
    retry_after: float | None = None


class Channel:
    """Base class: subclasses set ``name`` and implement ``send``.

    ``rate_per_second`` is the provider's declared limit when nothing is
    configured; the gateway's shared limiter and the preview's estimate read it.
    """

    name: ClassVar[str] = ""
    rate_per_second: ClassVar[float] = 10.0
    personal: ClassVar[bool] = True  # False for channels that reach places, not people

    def __init__(self, settings: Mapping[str, Any] | None = None):
        self.settings = dict(settings or {})

    def send(self, message: Outgoing) -> Receipt:
        raise NotImplementedError

    def send_many(self, messages: Sequence[Outgoing],
                  pace: Callable[[], None]) -> list[Receipt | ChannelError]:
        """Send in order, calling ``pace`` before each; an outcome per message tried.

        Stops after an error that pauses the channel: the messages after it
        were not tried. A provider that acknowledges asynchronously (an MQTT
        broker's PUBACK) overrides this to keep many sends in flight at once.
        """
        outcomes: list[Receipt | ChannelError] = []
        for message in messages:
            pace()
            try:
                outcomes.append(self.send(message))
            except ChannelError as error:
                outcomes.append(error)
                if error.pauses_channel:
                    break
        return outcomes

    def close(self) -> None:
        """Release connections; called when a worker shuts down."""
