"""WechatTemplateChannel through its real HTTP and Redis code, against the local fake API.

Every test here shares the access token through the machine's Redis (127.0.0.1:6379), under
a key prefix of its own that is deleted afterwards.
"""
import multiprocessing
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
import redis

from channels.base import ChannelError, Outgoing
from channels.wechat import (ACCOUNT_PAUSE_SECONDS, WechatTemplateChannel, client_msg_id,
                             seconds_until_quota_reset)
from messages.render import RenderContext
from messages.wechat import render
from tests.fakes.wechat_server import FakeWechat

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Announcement:
    id: int = 7
    headline: str = "山洪撤离"
    body: str = "今晚八时起山洪风险高。"
    instruction: str = "请到村委会集合。"
    status: str = "exercise"
    msg_type: str = "alert"
    severity: str = "severe"
    language: str = "zh"
    sent: datetime = datetime(2024, 7, 1, 7, 5, tzinfo=timezone.utc)


RENDERED = render(Announcement(), "zh", RenderContext(public_base_url="https://tb.example.cn"))


@pytest.fixture
def fake():
    server = FakeWechat().start()
    yield server
    server.stop()


@pytest.fixture
def redis_prefix():
    prefix = f"test-{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture
def make_channel(fake, redis_prefix):
    channels = []

    def make(**overrides):
        settings = {"app_id": fake.app_id, "app_secret": fake.app_secret,
                    "template_id": "TEMPLATE-ALERT", "api_base": fake.url, "timeout": 5,
                    "redis_url": REDIS_URL, "redis_prefix": redis_prefix, **overrides}
        channel = WechatTemplateChannel(settings)
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        channel.close()


def outgoing(openid, delivery_id=1):
    return Outgoing(delivery_id=delivery_id, announcement_id=7, address=openid, rendered=RENDERED)


def test_send_posts_the_template_payload_and_returns_the_msgid(fake, make_channel):
    receipt = make_channel().send(outgoing("o-follower"))

    assert (receipt.provider_id, receipt.status) == ("200228332", "sent")
    [sent] = fake.requests_to("/cgi-bin/message/template/send")
    assert sent.query == {"access_token": "ACCESS_TOKEN_1"}
    assert sent.body == {
        "touser": "o-follower",
        "template_id": "TEMPLATE-ALERT",
        "url": "https://tb.example.cn/a/7",
        "data": {
            "thing1": {"value": "【演练】【橙色预警】山洪撤离"},  # severe: orange
            "time2": {"value": "2024年7月1日 15:05"},
            "thing3": {"value": "县人民政府信息办"},
            "thing4": {"value": "今晚八时起山洪风险高。"},
            "thing5": {"value": "请到村委会集合。"},
        },
        "client_msg_id": "tongbao-1",
    }
    [token_request] = fake.requests_to("/cgi-bin/token")
    assert token_request.query == {"grant_type": "client_credential", "appid": "wx-test-app",
                                   "secret": "test-secret"}


@pytest.mark.parametrize("errcode, permanent, pauses", [
    (43004, True, False), (40003, True, False), (47003, True, False), (43101, True, False),
    (-1, False, False), (45009, False, True), (45047, False, False), (45015, False, False),
    (99999, False, False),
    # about the account, not the resident: the channel stops, nobody fails
    (40037, False, True), (40013, False, True), (48001, False, True), (48004, False, True),
    (40164, False, True), (50002, False, True),
])
def test_errcodes_map_to_permanent_transient_or_pausing(fake, make_channel, errcode, permanent,
                                                        pauses):
    fake.openid_errors["o-failing"] = errcode

    with pytest.raises(ChannelError) as failure:
        make_channel().send(outgoing("o-failing"))

    assert failure.value.code == str(errcode)
    assert failure.value.permanent is permanent
    assert failure.value.pauses_channel is pauses


def test_an_account_error_pauses_the_channel_for_a_while_and_says_why(fake, make_channel):
    fake.account_error = 48001

    with pytest.raises(ChannelError) as failure:
        make_channel().send(outgoing("o-follower"))

    assert failure.value.pauses_channel and not failure.value.permanent
    assert failure.value.retry_after == ACCOUNT_PAUSE_SECONDS
    assert "permission" in failure.value.message
    assert fake.shown == []


def test_send_many_stops_at_an_account_error_instead_of_failing_everyone(fake, make_channel):
    fake.account_error = 40037

    outcomes = make_channel().send_many([outgoing(f"o-{n}", n) for n in range(5)], lambda: None)

    assert len(outcomes) == 1 and outcomes[0].pauses_channel
    assert len(fake.requests_to("/cgi-bin/message/template/send")) == 1


def test_each_send_carries_a_duplicate_guard_derived_from_its_delivery(fake, make_channel):
    channel = make_channel()
    channel.send(outgoing("o-follower", delivery_id=41))
    channel.send(outgoing("o-follower", delivery_id=42))

    guards = [sent.body["client_msg_id"]
              for sent in fake.requests_to("/cgi-bin/message/template/send")]
    assert guards == [client_msg_id(41), client_msg_id(42)]
    assert len(set(guards)) == 2 and all(len(g.encode()) <= 64 for g in guards)
    assert len(fake.shown) == 2  # different deliveries to one follower are two messages


def test_a_send_retried_after_a_timeout_reaches_the_resident_once(fake, make_channel):
    channel = make_channel(timeout=0.3)
    fake.reply_delay = 1.0  # WeChat shows the message; its answer comes too late

    with pytest.raises(ChannelError) as failure:
        channel.send(outgoing("o-follower", delivery_id=9))
    assert (failure.value.code, failure.value.permanent) == ("http", False)

    fake.reply_delay = 0.0
    receipt = channel.send(outgoing("o-follower", delivery_id=9))  # the job's retry

    assert len(fake.requests_to("/cgi-bin/message/template/send")) == 2
    assert [shown["touser"] for shown in fake.shown] == ["o-follower"]
    assert receipt.provider_id == str(fake.shown[0]["msgid"])  # its delivery report matches


def test_quota_exhaustion_asks_to_wait_until_the_quota_resets(make_channel):
    with pytest.raises(ChannelError) as failure:
        make_channel().send(outgoing("o-quota"))

    assert failure.value.code == "45009"
    assert 0 < failure.value.retry_after <= 24 * 3600
    assert "quota" in failure.value.message


def test_quota_resets_at_midnight_china_time():
    three_pm_in_china = datetime(2024, 7, 1, 7, 0, tzinfo=timezone.utc)

    assert seconds_until_quota_reset(three_pm_in_china) == 9 * 3600


def test_sending_limits_ask_to_slow_down(fake, make_channel):
    fake.openid_errors["o-limited"] = 45047

    with pytest.raises(ChannelError) as failure:
        make_channel().send(outgoing("o-limited"))

    assert failure.value.retry_after == 60


def test_token_is_fetched_once_for_many_sends_and_channels(fake, make_channel):
    first, second = make_channel(), make_channel()

    for delivery_id in range(10):
        (first if delivery_id % 2 else second).send(outgoing("o-follower", delivery_id))

    assert fake.token_fetches == 1
    assert len(fake.requests_to("/cgi-bin/message/template/send")) == 10


def test_invalidated_token_is_refreshed_once_and_the_send_retried(fake, make_channel):
    channel = make_channel()
    channel.send(outgoing("o-follower"))
    fake.invalidate_tokens()

    receipt = channel.send(outgoing("o-follower", 2))

    assert receipt.status == "sent"
    assert fake.token_fetches == 2
    tokens_used = [sent.query["access_token"]
                   for sent in fake.requests_to("/cgi-bin/message/template/send")]
    assert tokens_used == ["ACCESS_TOKEN_1", "ACCESS_TOKEN_1", "ACCESS_TOKEN_2"]


def test_a_token_refused_twice_fails_transiently_without_a_third_try(fake, make_channel):
    fake.openid_errors["o-stale"] = 40001

    with pytest.raises(ChannelError) as failure:
        make_channel().send(outgoing("o-stale"))

    assert (failure.value.code, failure.value.permanent) == ("40001", False)
    assert fake.token_fetches == 2
    assert len(fake.requests_to("/cgi-bin/message/template/send")) == 2


def test_a_stalled_send_times_out_as_transient(fake, make_channel):
    fake.stall_sends = True

    with pytest.raises(ChannelError) as failure:
        make_channel(timeout=0.2).send(outgoing("o-follower"))

    assert (failure.value.code, failure.value.permanent) == ("http", False)


def test_unreachable_api_is_transient_and_does_not_reveal_the_secret(make_channel):
    with pytest.raises(ChannelError) as failure:
        make_channel(api_base="http://127.0.0.1:1").send(outgoing("o-follower"))

    assert (failure.value.code, failure.value.permanent) == ("http", False)
    assert "test-secret" not in str(failure.value)


def test_a_retry_answered_clientmsgid_exist_counts_as_sent_not_failed(fake, make_channel):
    fake.repeat_errcode = 45065  # should WeChat answer a repeated guard as its mass send does
    channel = make_channel(timeout=0.3)
    fake.reply_delay = 1.0
    with pytest.raises(ChannelError):
        channel.send(outgoing("o-follower", delivery_id=9))
    fake.reply_delay = 0.0

    receipt = channel.send(outgoing("o-follower", delivery_id=9))

    assert receipt.status == "sent" and receipt.provider_id == str(fake.shown[0]["msgid"])
    assert len(fake.shown) == 1


def test_refused_credentials_are_an_account_problem_not_the_residents(fake, make_channel):
    with pytest.raises(ChannelError) as failure:
        make_channel(app_secret="wrong").send(outgoing("o-follower"))

    assert (failure.value.code, failure.value.permanent) == ("40125", False)
    assert failure.value.pauses_channel
    assert fake.requests_to("/cgi-bin/message/template/send") == []


@pytest.mark.parametrize("errcode", [40001, 40013, 40164, 48004, 50002])
def test_a_token_refused_for_the_account_pauses_the_channel(fake, make_channel, errcode):
    fake.token_error = errcode  # 40001 from the token endpoint itself: a wrong app secret

    with pytest.raises(ChannelError) as failure:
        make_channel().send(outgoing("o-follower"))

    assert failure.value.code == str(errcode)
    assert failure.value.pauses_channel and not failure.value.permanent
    assert fake.requests_to("/cgi-bin/message/template/send") == []


def send_from_worker_process(settings, start, count):
    """Runs in a spawned process: wait for the other worker, then send ``count`` messages."""
    channel = WechatTemplateChannel(settings)
    start.wait()
    for delivery_id in range(count):
        channel.send(outgoing("o-follower", delivery_id))
    channel.close()


def test_two_worker_processes_starting_together_fetch_the_token_once(fake, redis_prefix):
    fake.token_delay = 0.3  # holds the first fetch open while the other worker misses too
    settings = {"app_id": fake.app_id, "app_secret": fake.app_secret, "template_id": "T",
                "api_base": fake.url, "redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    workers = [spawn.Process(target=send_from_worker_process, args=(settings, start, 5))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        if worker.is_alive():  # a hung worker must not outlive the test run
            worker.kill()

    assert [worker.exitcode for worker in workers] == [0, 0]
    assert fake.token_fetches == 1
    assert len(fake.requests_to("/cgi-bin/message/template/send")) == 10


def test_the_token_fetch_and_the_sends_share_one_kept_alive_connection(fake, make_channel):
    channel = make_channel()

    for delivery_id in range(5):
        channel.send(outgoing("o-follower", delivery_id))

    assert fake.token_fetches == 1 and len(fake.requests_to("/cgi-bin/message/template/send")) == 5
    assert fake.connections == 1


def test_a_process_reads_the_shared_token_once_a_minute_not_at_every_send(fake, make_channel,
                                                                         monkeypatch):
    channel = make_channel()
    reads = []
    shared_get = channel.redis.get
    monkeypatch.setattr(channel.redis, "get", lambda key: reads.append(key) or shared_get(key))

    for delivery_id in range(5):
        channel.send(outgoing("o-follower", delivery_id))
    first_minute = len(reads)
    now = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: now() + channel.token.KEEP_SECONDS + 1)
    channel.send(outgoing("o-follower", 5))

    assert first_minute <= 2  # the miss, and the reread under the fetch lock
    assert len(reads) == first_minute + 1 and fake.token_fetches == 1
