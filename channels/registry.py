"""Channel names mapped to their classes, imported only when first used.

Lazy imports keep a worker that never sends a WeChat message from loading
wechat's dependencies, and let the web process list channels cheaply.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Mapping

from channels.base import Channel

#: Every channel name the gateway plans with, and the provider that serves it
#: when its provider is configured. An unconfigured channel falls back to the
#: outbox (see ``gateway.config``).
PROVIDERS: dict[str, str] = {
    "outbox": "channels.outbox:OutboxChannel",
    "twilio_sms": "channels.twilio_sms:TwilioSmsChannel",
    "twilio_voice": "channels.twilio_voice:TwilioVoiceChannel",
    "mqtt_loudspeaker": "channels.loudspeaker.channel:MqttLoudspeakerChannel",
    "wechat": "channels.wechat:WechatTemplateChannel",
    "wecom_robot": "channels.wecom_robot:WecomRobotChannel",
    "broadcast": "channels.broadcast:BroadcastChannel",
    "webhook": "channels.broadcast:WebhookChannel",
    "weibo": "channels.weibo:WeiboChannel",
}

#: Channels planned for an announcement. WeCom group robots post into village groups and come
#: with ``wechat``; they and loudspeakers reach places, not people.
CHANNEL_NAMES = ("sms", "voice", "wechat", "loudspeaker", "wecom_robot", "broadcast", "webhook",
                 "weibo")
PERSONAL_CHANNELS = ("sms", "voice", "wechat")
#: Broadcasters (TV crawl, traffic radio, the warning platform), signed webhooks and the
#: office's Weibo account: public and partner channels that come with every notice whose
#: areas they serve, whatever channels it names (docs/interop.md). Never personal.
PUBLIC_CHANNELS = ("broadcast", "webhook", "weibo")
PLACE_CHANNELS = ("loudspeaker", "wecom_robot", *PUBLIC_CHANNELS)
#: A grid worker telling a resident at their door: a personal channel no provider serves and
#: no plan chooses; the ledger writes it when the worker taps "told in person" (confirmed).
IN_PERSON = "in_person"
#: Every channel whose delivery reaches a person, so counts in reached and confirmed.
RESIDENT_CHANNELS = (*PERSONAL_CHANNELS, IN_PERSON)


class UnknownChannel(LookupError):
    pass


def channel_class(provider: str) -> type[Channel]:
    try:
        target = PROVIDERS[provider]
    except KeyError:
        raise UnknownChannel(f"no channel provider named {provider!r}") from None
    module_name, class_name = target.split(":")
    return getattr(import_module(module_name), class_name)


def build(provider: str, settings: Mapping[str, Any]) -> Channel:
    return channel_class(provider)(settings)

