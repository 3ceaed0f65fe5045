"""WeChat Official Account template messages, to residents who follow the office's account.

Why the documented HTTP API with ``requests`` and not wechatpy: only two endpoints are used
(``GET /cgi-bin/token`` and ``POST /cgi-bin/message/template/send``), and wechatpy 1.8.18
(last released 2021) fetches its token from a hard-coded ``https://api.weixin.qq.com`` URL
with no timeout, so neither the base-URL override (the local test server, a proxy) nor a
bounded wait would reach the token request; its shared token storage has no lock either,
so workers that miss the cache together would all fetch. The error table is ours anyway.

The access token is shared by every worker through Redis: one key per app id, kept for
``expires_in`` minus a margin so it is replaced before WeChat expires it. A worker that
misses the cache takes a short Redis lock (SET NX with expiry) and fetches; the others wait
and reread, so the token is fetched once however many workers start together. (Each fetch
also retires the previous token within minutes, so per-process tokens would keep
invalidating each other.) On a token-invalid errcode the token is dropped, fetched again
and the send retried once.

WeChat reports errors as ``errcode`` in a 200 body. Errors about the resident or this
message are permanent (the gateway moves the resident to SMS); errors about the account say
nothing about the resident, so they never fail one: WeChat busy is transient, and an account
that cannot send at all (a wrong app id, secret or template id, no permission for the API, a
server address not on the account's IP whitelist, an account banned or limited:
``ACCOUNT_ERRORS``) pauses the channel for ``ACCOUNT_PAUSE_SECONDS`` at a time, the cause
shown in the console, until someone fixes it. Quota exhaustion is
``ChannelError(code=QUOTA_EXHAUSTED)`` with ``retry_after`` set to the quota's reset at
midnight China time: the gateway pauses the channel until then.

WeChat reports each template message's fate later, as a ``TEMPLATESENDJOBFINISH`` event
pushed to the account's callback URL (服务器配置), signed with the token configured there:
``signature`` = SHA-1 of the token, ``timestamp`` and ``nonce`` sorted and joined. Its
``MsgID`` is the send's ``msgid``, its ``Status`` ``success``, ``failed:user block`` (the
resident refused the account's messages) or ``failed: system failed`` (WeChat could not
deliver). ``valid_signature`` and ``parse_event`` read it with no channel object, as
``twilio_sms.parse_callback`` does.

Every send carries ``client_msg_id``, derived from the delivery id (``client_msg_id``). WeChat
documents it as the template send's duplicate guard (防重入id): "for the same openid +
client_msg_id only one message is sent; valid for 10 minutes" — developers.weixin.qq.com/doc/
offiaccount/Message_Management/Template_Message_Interface.html (now .../doc/service/api/
notify/template/api_sendtemplatemessage.html). So a send whose answer was lost (a timeout)
and that is tried again within ten minutes cannot reach the resident twice. A retry later
than that is not covered by WeChat's guard.
"""
from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

import redis
import requests
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from channels.base import Channel, ChannelError, Outgoing, Receipt, StatusUpdate
from channels.http import provider_session

QUOTA_EXHAUSTED = "45009"
TOKEN_INVALID = {40001, 40014, 42001}
PERMANENT_ERRORS = {
    43004: "the resident does not follow the account",
    40003: "invalid openid",
    47003: "template data refused (a value too long or of the wrong form)",
    43101: "the resident refused messages from the account",
}
#: Errors that say the account cannot send to anyone (WeChat's global return codes): the
#: channel is paused instead of failing every resident and moving them all to SMS.
ACCOUNT_ERRORS = {
    40013: "the app id (WECHAT_APP_ID) is not valid",
    40125: "the app secret (WECHAT_APP_SECRET) is not valid",
    40164: "this server's IP address is not on the account's IP whitelist",
    40037: "the template id (WECHAT_TEMPLATE_ID) is not valid for this account",
    48001: "the account has no permission for template messages",
    48004: "WeChat has banned the account from this API",
    50002: "the account is limited by WeChat",
}
#: "clientmsgid exist": how WeChat's mass send answers a repeated guard (with the first
#: send's msg_id). For template sends WeChat documents only that no second message goes
#: out; should it answer a repeat this way too, the send is taken as done, not as failed.
ALREADY_SENT = 45065
ACCOUNT_PAUSE_SECONDS = 600  # then one send tries again: a fixed setting resumes by itself
SLOW_DOWN_ERRORS = {45047: "sending limit reached", 45015: "sending limit reached"}
SLOW_DOWN_SECONDS = 60.0
TOKEN_MARGIN_SECONDS = 300  # WeChat keeps a replaced token valid for five minutes
CHINA_STANDARD_TIME = timezone(timedelta(hours=8))

# Deletes a key only while it still holds the given value: a worker may drop its own stale
# token or release its own lock, never a fresher one another worker has just written.
_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SharedAccessToken:
    """An access token fetched by one worker and read by all, through Redis.

    A process keeps the token it read for ``KEEP_SECONDS`` rather than asking Redis at every
    send (a round trip per message). That is safe: the token in Redis is replaced
    ``TOKEN_MARGIN_SECONDS`` before WeChat retires it, and a replaced token stays valid that
    long, so a copy this young is never one WeChat refuses for its age; one it refuses anyway
    (rotated by hand) is discarded here too."""

    POLL_SECONDS = 0.05
    KEEP_SECONDS = 60.0

    def __init__(self, client: redis.Redis, key: str, fetch: Callable[[], tuple[str, int]],
                 lock_seconds: float):
        self.redis, self.key, self.lock_key = client, key, key + ":lock"
        self.fetch = fetch
        self.lock_seconds = lock_seconds
        self.delete_if_equal = client.register_script(_DELETE_IF_EQUAL)
        self._kept: tuple[str, float] | None = None  # (token, time.monotonic() to drop it)

    def get(self) -> str:
        if self._kept and time.monotonic() < self._kept[1]:
            return self._kept[0]
        token = self._shared()
        self._kept = (token, time.monotonic() + self.KEEP_SECONDS)
        return token

    def _shared(self) -> str:
        # Twice the lock's life: long enough to outlast a fetcher that died holding it.
        deadline = time.monotonic() + 2 * self.lock_seconds
        while True:
            token = self.redis.get(self.key)
            if token:
                return token
            owner = uuid.uuid4().hex
            if self.redis.set(self.lock_key, owner, nx=True, px=int(self.lock_seconds * 1000)):
                try:
                    # Reread: the last holder may have stored a token since our miss.
                    return self.redis.get(self.key) or self._fetch_and_store()
                finally:
                    self.delete_if_equal(keys=[self.lock_key], args=[owner])
            if time.monotonic() > deadline:
                raise ChannelError("no WeChat access token: another worker's fetch did not finish",
                                   code="token-wait")
            time.sleep(self.POLL_SECONDS)

    def discard(self, stale: str) -> None:
        if self._kept and self._kept[0] == stale:
            self._kept = None
        self.delete_if_equal(keys=[self.key], args=[stale])

    def _fetch_and_store(self) -> str:
        token, expires_in = self.fetch()
        self.redis.set(self.key, token, ex=expires_in - min(TOKEN_MARGIN_SECONDS, expires_in // 2))
        return token


class WechatTemplateChannel(Channel):
    name = "wechat"
    # WeChat sets a daily quota (100,000 by default), not a rate; this keeps a county's
    # followers within minutes without bursting.
    rate_per_second = 50.0

    def __init__(self, settings: Mapping[str, Any] | None = None):
        super().__init__(settings)
        self.app_id = self.settings["app_id"]
        self.app_secret = self.settings["app_secret"]
        self.template_id = self.settings["template_id"]
        self.api_base = (self.settings.get("api_base") or "https://api.weixin.qq.com").rstrip("/")
        self.timeout = float(self.settings.get("timeout") or 10)
        self.session = provider_session(self.api_base)
        self.redis = redis.Redis.from_url(self.settings["redis_url"], decode_responses=True)
        key = f"{self.settings.get('redis_prefix', 'tongbao:')}wechat:token:{self.app_id}"
        self.token = SharedAccessToken(self.redis, key, self._fetch_token,
                                       lock_seconds=self.timeout + 5)

    def send(self, message: Outgoing) -> Receipt:
        payload = {
            "touser": message.address,
            "template_id": self.template_id,
            "url": message.rendered.data["url"],
            "data": message.rendered.data["template"],
            "client_msg_id": client_msg_id(message.delivery_id),
        }
        try:
            token = self.token.get()
            reply = self._send_template(token, payload)
            if reply.get("errcode") in TOKEN_INVALID:
                self.token.discard(token)
                reply = self._send_template(self.token.get(), payload)
        except redis.RedisError as error:
            raise ChannelError(f"shared token store unavailable: {error}", code="redis") from error
        if reply.get("errcode", 0) == ALREADY_SENT:
            # The guard held: WeChat had this client_msg_id, so the resident has the message.
            msgid = reply.get("msgid") or reply.get("msg_id")
            return Receipt(provider_id=str(msgid) if msgid else None, status="sent",
                           detail="WeChat had sent this delivery already (client_msg_id)")
        if reply.get("errcode", 0) != 0:
            raise template_error(reply["errcode"], reply.get("errmsg", ""))
        return Receipt(provider_id=str(reply["msgid"]), status="sent")

    def close(self) -> None:
        self.session.close()
        self.redis.close()

    def _send_template(self, token: str, payload: dict) -> dict:
        return self._call("POST", "/cgi-bin/message/template/send",
                          params={"access_token": token}, json=payload)

    def _fetch_token(self) -> tuple[str, int]:
        reply = self._call("GET", "/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret})
        if reply.get("errcode", 0) in TOKEN_INVALID:
            # From the token endpoint itself 40001 means the app secret is wrong.
            raise ChannelError(f"{ACCOUNT_ERRORS[40125]} ({reply.get('errmsg', '')})",
                               code=str(reply["errcode"]), retry_after=ACCOUNT_PAUSE_SECONDS,
                               pauses_channel=True)
        if reply.get("errcode", 0) != 0:
            raise template_error(reply["errcode"], reply.get("errmsg", ""))
        return reply["access_token"], int(reply["expires_in"])

    def _call(self, method: str, path: str, **kwargs: Any) -> dict:
        try:
            response = self.session.request(method, self.api_base + path, timeout=self.timeout,
                                            **kwargs)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as error:
            # Not the exception's text: its URL carries the app secret or the access token.
            raise ChannelError(f"WeChat API unreachable: {_describe(error)}", code="http") from None


def client_msg_id(delivery_id: int) -> str:
    """The duplicate guard of one delivery's send: the same on every try of that delivery."""
    return f"tongbao-{delivery_id}"


def template_error(errcode: int, errmsg: str) -> ChannelError:
    """The ``ChannelError`` for an errcode: permanent only if about the resident, pausing the
    channel if about the account."""
    code = str(errcode)
    if errcode in PERMANENT_ERRORS:
        return ChannelError(f"{PERMANENT_ERRORS[errcode]} ({errmsg})", permanent=True, code=code)
    if errcode in ACCOUNT_ERRORS:
        return ChannelError(f"{ACCOUNT_ERRORS[errcode]} ({errmsg})", code=code,
                            retry_after=ACCOUNT_PAUSE_SECONDS, pauses_channel=True)
    if code == QUOTA_EXHAUSTED:
        return ChannelError("WeChat's daily template-message quota is used up: pause the channel "
                            "until it resets at midnight China time", code=code,
                            retry_after=seconds_until_quota_reset(), pauses_channel=True)
    if errcode in SLOW_DOWN_ERRORS:
        return ChannelError(f"{SLOW_DOWN_ERRORS[errcode]} ({errmsg})", code=code,
                            retry_after=SLOW_DOWN_SECONDS)
    if errcode in TOKEN_INVALID:
        return ChannelError(f"access token refused again after a refresh ({errmsg})", code=code)
    return ChannelError(f"WeChat error {errcode}: {errmsg}", code=code)


def _describe(error: Exception) -> str:
    if isinstance(error, requests.HTTPError):
        return f"HTTP {error.response.status_code}"
    return type(error).__name__


def seconds_until_quota_reset(now: datetime | None = None) -> float:
    local = (now or datetime.now(timezone.utc)).astimezone(CHINA_STANDARD_TIME)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(),
                                tzinfo=CHINA_STANDARD_TIME)
    return (midnight - local).total_seconds()


def valid_signature(token: str, signature: str | None, timestamp: str | None,
                    nonce: str | None) -> bool:
    """Whether a request to the callback URL is WeChat's: sha1(sorted token, timestamp, nonce)."""
    if not (token and signature and timestamp and nonce):
        return False
    expected = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return hmac.compare_digest(expected, signature.lower())


class MalformedEvent(ValueError):
    """The body pushed to the callback URL is not WeChat's XML."""


#: A finished template message's ``Status`` → the ledger status and the error kept with it.
JOB_FINISH_STATUSES = {
    "success": ("delivered", None),
    "failed:user block": ("failed", "the resident blocks the account's messages"),
    "failed: system failed": ("failed", "WeChat could not deliver the message"),
}


def parse_event(body: bytes) -> StatusUpdate | None:
    """The delivery report in a pushed message; None for any other event or message.

    Raises ``MalformedEvent`` for a body that is not XML or has DTDs or entities
    (parsed with defusedxml).
    """
    try:
        root = fromstring(body)
    except (ParseError, DefusedXmlException, ValueError) as error:
        raise MalformedEvent(f"not WeChat's XML: {type(error).__name__}") from None
    if root.tag != "xml":
        raise MalformedEvent("not WeChat's XML: the root element is not <xml>")
    if (root.findtext("MsgType") or "").strip() != "event" or \
            (root.findtext("Event") or "").strip() != "TEMPLATESENDJOBFINISH":
        return None
    msgid = (root.findtext("MsgID") or "").strip()
    status = (root.findtext("Status") or "").strip()
    if not msgid:
        raise MalformedEvent("a TEMPLATESENDJOBFINISH event without a MsgID")
    # An unknown failure is a failure: the message did not arrive.
    ledger_status, error = JOB_FINISH_STATUSES.get(
        status, ("failed", f"WeChat reported {status[:100]!r}"))
    return StatusUpdate(ledger_status, provider_id=msgid,
                        error=error and f"[{status}] {error}", permanent=True,
                        extra={"openid": (root.findtext("FromUserName") or "").strip()})
