"""WecomRobotChannel through its real HTTP and Redis code, against the local fake API.

The per-robot rate limit lives in the machine's Redis (127.0.0.1:6379), under a key prefix
of each test's own that is deleted afterwards.
"""
import uuid

import pytest
import redis

from channels.base import ChannelError, Outgoing
from channels.wecom_robot import WecomRobotChannel
from messages.render import Rendered
from tests.fakes.wechat_server import FakeWechat

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
MARKDOWN = "### 【演练】山洪撤离\n> 发布单位：县人民政府信息办\n\n[详情](https://tb.example.cn/a/7)"


@pytest.fixture
def fake():
    server = FakeWechat().start()
    yield server
    server.stop()


@pytest.fixture
def make_channel(fake):
    prefix = f"test-{uuid.uuid4().hex}:"
    channels = []

    def make(**overrides):
        channel = WecomRobotChannel({"api_base": fake.url, "redis_url": REDIS_URL,
                                     "redis_prefix": prefix, "timeout": 5, **overrides})
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        channel.close()
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


def post(robot_key, delivery_id=1):
    return Outgoing(delivery_id=delivery_id, announcement_id=7, address=robot_key,
                    rendered=Rendered("wecom_robot", "zh", MARKDOWN))


def test_send_posts_the_markdown_to_the_robot_and_counts_as_delivered(fake, make_channel):
    receipt = make_channel().send(post("robot-key-1"))

    assert receipt.status == "delivered"
    [sent] = fake.requests_to("/cgi-bin/webhook/send")
    assert sent.query == {"key": "robot-key-1"}
    assert sent.body == {"msgtype": "markdown", "markdown": {"content": MARKDOWN}}


def test_unknown_robot_key_is_permanent_and_not_repeated_in_the_error(make_channel):
    with pytest.raises(ChannelError) as failure:
        make_channel().send(post("robot-key-gone"))

    assert (failure.value.code, failure.value.permanent) == ("93000", True)
    assert "robot-key-gone" not in str(failure.value)


def test_frequency_limit_is_transient_with_a_minute_to_wait(make_channel):
    with pytest.raises(ChannelError) as failure:
        make_channel().send(post("robot-busy"))

    assert (failure.value.code, failure.value.permanent) == ("45009", False)
    assert failure.value.retry_after == 60


def test_a_stalled_post_times_out_as_transient(fake, make_channel):
    fake.stall_sends = True

    with pytest.raises(ChannelError) as failure:
        make_channel(timeout=0.2).send(post("robot-key-1"))

    assert (failure.value.code, failure.value.permanent) == ("http", False)


def test_rate_limit_is_shared_by_every_channel_posting_to_one_robot(fake, make_channel):
    # Two workers' channels, three posts a minute, no waiting: whoever comes fourth is refused.
    first, second = (make_channel(per_minute=3, max_wait=0) for _ in range(2))
    outcomes = []
    for delivery_id in range(8):
        channel = first if delivery_id % 2 else second
        try:
            channel.send(post("robot-key-1", delivery_id))
            outcomes.append("delivered")
        except ChannelError as refused:
            assert (refused.code, refused.permanent) == ("rate-limited", False)
            assert 0 < refused.retry_after <= 60
            outcomes.append("refused")

    assert outcomes == ["delivered"] * 3 + ["refused"] * 5
    assert len(fake.requests_to("/cgi-bin/webhook/send")) == 3


def test_each_robot_has_its_own_window(fake, make_channel):
    channel = make_channel(per_minute=1, max_wait=0)
    channel.send(post("robot-key-1"))

    channel.send(post("robot-key-2"))

    with pytest.raises(ChannelError):
        channel.send(post("robot-key-1", 2))
    assert [sent.query["key"] for sent in fake.requests_to("/cgi-bin/webhook/send")] == [
        "robot-key-1", "robot-key-2"]
