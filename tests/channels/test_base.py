"""The shared send loop every channel inherits (``Channel.send_many``)."""
from channels.base import Channel, ChannelError, Outgoing, Receipt


class ScriptedChannel(Channel):
    """Answers each address with what the test wrote for it."""

    name = "scripted"

    def __init__(self, answers):
        super().__init__()
        self.answers = answers
        self.sent = []

    def send(self, message):
        self.sent.append(message.address)
        answer = self.answers[message.address]
        if isinstance(answer, ChannelError):
            raise answer
        return answer


def outgoing(*addresses):
    return [Outgoing(number, 1, address, rendered=None) for number, address in enumerate(addresses)]


def test_every_message_gets_an_outcome_in_order_and_is_paced():
    busy = ChannelError("busy", code="30003")
    channel = ScriptedChannel({"a": Receipt("A"), "b": busy, "c": Receipt("C")})
    paced = []
    outcomes = channel.send_many(outgoing("a", "b", "c"), lambda: paced.append(len(channel.sent)))
    assert outcomes == [Receipt("A"), busy, Receipt("C")]
    assert paced == [0, 1, 2]  # the pace comes before each send, not after


def test_an_error_that_pauses_the_channel_stops_the_loop():
    quota = ChannelError("daily quota used", code="45009", pauses_channel=True, retry_after=60)
    channel = ScriptedChannel({"a": Receipt("A"), "b": quota, "c": Receipt("C")})
    outcomes = channel.send_many(outgoing("a", "b", "c"), lambda: None)
    assert outcomes == [Receipt("A"), quota]
    assert channel.sent == ["a", "b"]
