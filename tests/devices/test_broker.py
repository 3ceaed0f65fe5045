"""The embedded quickstart broker carries the whole loudspeaker exchange."""
from __future__ import annotations

import pytest

from devices.broker import EmbeddedBroker
from tests.channels.loudspeaker_rig import Rig, serve_audio

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def audio_url(tmp_path_factory):
    with serve_audio(tmp_path_factory.mktemp("audio")) as url:
        yield url


def test_embedded_broker_carries_the_whole_exchange(tmp_path, audio_url):
    broker = EmbeddedBroker()
    broker.start()
    try:
        rig = Rig(tmp_path, broker.url).start()
        try:
            receipt = rig.channel.send(rig.outgoing(audio_url))
            rig.events.ack(rig.device, "played", command_id=receipt.provider_id)
            assert len(rig.played(receipt.provider_id)) == 1
        finally:
            rig.close()
    finally:
        broker.stop()
