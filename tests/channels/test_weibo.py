"""WeiboChannel through its real HTTP code against the statuses/share stand-in."""
import pytest

from channels.base import ChannelError, Outgoing
from channels.weibo import WeiboChannel, classify
from messages.render_types import Rendered
from tests.fakes.weibo_server import FakeWeibo

pytestmark = pytest.mark.integration
POST = "【橙色预警】暴雨预警 今夜有大暴雨。 详情: https://tb.example.gov.cn/a/12"


@pytest.fixture
def weibo():
    server = FakeWeibo("token-1", "tb.example.gov.cn").start()
    yield server
    server.stop()


def send(server, text=POST, token="token-1"):
    channel = WeiboChannel({"api_base": server.url, "access_token": token, "rip": "10.0.0.1"})
    try:
        return channel.send(Outgoing(1, 12, "account", Rendered("weibo", "zh", text)))
    finally:
        channel.close()


def test_a_post_is_delivered_with_its_id(weibo):
    receipt = send(weibo)
    assert receipt.status == "delivered" and receipt.provider_id.startswith("48")
    assert weibo.posts == [POST]


def test_an_expired_token_pauses_the_channel(weibo):
    with pytest.raises(ChannelError) as caught:
        send(weibo, token="old")
    assert caught.value.pauses_channel and "WEIBO_ACCESS_TOKEN" in str(caught.value)


def test_refused_content_fails_for_good(weibo):
    send(weibo)
    with pytest.raises(ChannelError) as repeated:
        send(weibo)
    assert repeated.value.permanent and repeated.value.code == "20019"
    with pytest.raises(ChannelError) as too_long:
        send(weibo, POST + "长" * 140)
    assert too_long.value.permanent and too_long.value.code == "20012"


def test_weibo_failures_are_retried_and_rate_limits_pause(weibo):
    weibo.fail_with = [10002, 10023]
    with pytest.raises(ChannelError) as unavailable:
        send(weibo)
    assert not unavailable.value.permanent and not unavailable.value.pauses_channel
    with pytest.raises(ChannelError) as limited:
        send(weibo)
    assert limited.value.pauses_channel and limited.value.retry_after == 3600


def test_an_unreachable_api_is_transient():
    channel = WeiboChannel({"api_base": "http://127.0.0.1:9", "access_token": "t"})
    with pytest.raises(ChannelError) as caught:
        channel.send(Outgoing(1, 12, "account", Rendered("weibo", "zh", POST)))
    assert not caught.value.permanent and "token" not in str(caught.value)


@pytest.mark.parametrize("status, reply, kind", [
    (502, {}, "retry"), (400, {"error_code": 20021, "error": "illegal content"}, "fail"),
    (403, {"error_code": 21314}, "pause")])
def test_classify(status, reply, kind):
    error = classify(status, reply)
    assert kind == ("pause" if error.pauses_channel else "fail" if error.permanent else "retry")
