"""The office's Weibo account: each notice (and its correction) posted with statuses/share.

Weibo open API, statuses/share (https://open.weibo.com/wiki/2/statuses/share):
``POST https://api.weibo.com/2/statuses/share.json``, form-encoded, with ``access_token``
(OAuth 2), ``status`` (URL-encoded text, at most 140 汉字, no ``#topic#``, and it must
contain at least one URL of the app's bound secure domain — the notice's public page) and
``rip`` (the real IP of the posting user). statuses/update, the older call, was closed to
third-party apps; share is the one left. An answer with ``id``/``idstr`` is the post;
errors come as ``{"error_code": …, "error": …}`` (https://open.weibo.com/wiki/Error_code):
codes 1xxxx are system-level, 2xxxx service-level.

The text is ``messages.weibo``'s. ``Outgoing.address`` is only the account's place name.
Errors are classified like the other providers':

* **retry**: Weibo's own failures (10001–10003, 10009–10011), HTTP 5xx, timeouts;
* **pause** the channel: rate limits (10022–10024, 20016) for ``RATE_PAUSE_SECONDS``, and an
  access token that is expired, revoked or lacks the right (21314–21319, 21327, 21332, 10014)
  until an operator sets a new ``WEIBO_ACCESS_TOKEN``;
* **fail** this post: content Weibo refuses (too long, repeated, an illegal link or word,
  a bad parameter) — posting it again would be refused again.
"""
from __future__ import annotations

from typing import Any, Mapping

import requests

from channels.base import Channel, ChannelError, Outgoing, Receipt
from channels.http import provider_session

SHARE_PATH = "/2/statuses/share.json"
RETRY_CODES = {10001, 10002, 10003, 10009, 10010, 10011}
RATE_LIMIT_CODES = {10022, 10023, 10024, 20016}
TOKEN_CODES = {10014, 21314, 21315, 21316, 21317, 21318, 21319, 21327, 21332}
RATE_PAUSE_SECONDS = 3600.0
TOKEN_PAUSE_SECONDS = 6 * 3600.0


class WeiboChannel(Channel):
    name = "weibo"
    personal = False
    rate_per_second = 0.1

    def __init__(self, settings: Mapping[str, Any] | None = None):
        super().__init__(settings)
        self.api_base = (self.settings.get("api_base") or "https://api.weibo.com").rstrip("/")
        self.access_token = self.settings["access_token"]
        self.rip = self.settings.get("rip") or "127.0.0.1"
        self.timeout = float(self.settings.get("timeout") or 10)
        self.session = provider_session(self.api_base)

    def send(self, message: Outgoing) -> Receipt:
        try:
            response = self.session.post(self.api_base + SHARE_PATH, timeout=self.timeout, data={
                "access_token": self.access_token, "status": message.rendered.text,
                "rip": self.rip})
        except requests.RequestException as error:
            # The exception's text could hold the form, and the form holds the token.
            raise ChannelError(f"Weibo API unreachable: {type(error).__name__}",
                               code="http") from None
        try:
            reply = response.json()
        except ValueError:
            reply = {}
        if response.ok and (reply.get("idstr") or reply.get("id")):
            return Receipt(provider_id=str(reply.get("idstr") or reply["id"]), status="delivered")
        raise classify(response.status_code, reply)

    def close(self) -> None:
        self.session.close()


def classify(http_status: int, reply: Mapping[str, Any]) -> ChannelError:
    """The ``ChannelError`` for a refused post: retry, pause the channel, or fail it."""
    try:
        code = int(reply.get("error_code", 0))
    except (TypeError, ValueError):
        code = 0
    text = f"Weibo error {code or http_status}: {reply.get('error', '')}".rstrip(": ")
    label = str(code or http_status)
    if code in RATE_LIMIT_CODES:
        return ChannelError(text, code=label, pauses_channel=True, retry_after=RATE_PAUSE_SECONDS)
    if code in TOKEN_CODES:
        return ChannelError(f"{text} (set a new WEIBO_ACCESS_TOKEN)", code=label,
                            pauses_channel=True, retry_after=TOKEN_PAUSE_SECONDS)
    if code in RETRY_CODES or (not code and (http_status >= 500 or http_status == 429)):
        return ChannelError(text, code=label)
    return ChannelError(text, code=label, permanent=True)
