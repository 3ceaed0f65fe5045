"""Which provider serves each channel, built from the configuration.

A channel whose provider is configured uses it; one that is not falls back to
the outbox (unless ``OUTBOX_FALLBACK`` is off, in which case the channel is not
available and the policy drops it). Senders are built once per process.
"""
from __future__ import annotations

import os
from typing import Any

from flask import Flask, current_app

from channels import registry
from channels.base import Channel, Outgoing
from channels.broadcast import Destination
from gateway.delivery import queues
from gateway.store import destinations
from gateway.store.db import engine
from gateway.delivery.ratelimit import RateLimiter, effective_rate
from messages.render import RenderContext

RATE_SETTING = {"sms": "SMS_RATE", "voice": "VOICE_RATE", "wechat": "WECHAT_RATE",
                "loudspeaker": "LOUDSPEAKER_RATE", "wecom_robot": "WECOM_ROBOT_RATE",
                "broadcast": "BROADCAST_RATE", "webhook": "BROADCAST_RATE", "weibo": "WEIBO_RATE"}


def configured_provider(config: dict, channel: str) -> str | None:
    """The real provider configured for a channel, if any."""
    twilio = config["TWILIO_ACCOUNT_SID"] and config["TWILIO_AUTH_TOKEN"] and (
        config["TWILIO_FROM_NUMBER"] or config["TWILIO_MESSAGING_SERVICE_SID"])
    wechat = config["WECHAT_APP_ID"] and config["WECHAT_APP_SECRET"] and config["WECHAT_TEMPLATE_ID"]
    candidates = {
        "sms": "twilio_sms" if twilio else None,
        "voice": "twilio_voice" if twilio and config["TWILIO_FROM_NUMBER"] else None,
        "wechat": "wechat" if wechat else None,
        "loudspeaker": "mqtt_loudspeaker" if config["MQTT_URL"] else None,
        "wecom_robot": "wecom_robot",  # each robot's key is its own configuration
        "broadcast": "broadcast",  # each destination's URL and secret are its own
        "webhook": "webhook",
        "weibo": "weibo" if config["WEIBO_ACCESS_TOKEN"] else None,
    }
    provider = candidates[channel]
    return provider if provider in registry.PROVIDERS else None


def provider_for(config: dict, channel: str) -> str | None:
    provider = configured_provider(config, channel)
    if provider is None and config["OUTBOX_FALLBACK"]:
        return "outbox"
    return provider


def available_channels(config: dict) -> set[str]:
    return {channel for channel in registry.CHANNEL_NAMES if provider_for(config, channel)}


def rate(config: dict, channel: str) -> float:
    """Sends per second: the configured rate for a real provider; the outbox's own for the outbox."""
    provider = provider_for(config, channel)
    if provider == "outbox":
        return registry.channel_class("outbox").rate_per_second
    return config[RATE_SETTING[channel]]


def expected_rate(config: dict, channel: str) -> float:
    """The rate sends will actually go at, which the preview's estimate uses."""
    return effective_rate(rate(config, channel))


def settings_for(app: Flask, channel: str, provider: str) -> dict[str, Any]:
    config = app.config
    if provider == "outbox":
        return {"path": outbox_path(app), "channel": channel}
    if provider in ("twilio_sms", "twilio_voice"):
        return {"account_sid": config["TWILIO_ACCOUNT_SID"], "auth_token": config["TWILIO_AUTH_TOKEN"],
                "from_number": config["TWILIO_FROM_NUMBER"],
                "messaging_service_sid": config["TWILIO_MESSAGING_SERVICE_SID"],
                "api_base": config["TWILIO_API_BASE"],
                "gather_seconds": config["VOICE_GATHER_SECONDS"]}
    if provider == "wechat":
        return {"app_id": config["WECHAT_APP_ID"], "app_secret": config["WECHAT_APP_SECRET"],
                "template_id": config["WECHAT_TEMPLATE_ID"], "api_base": config["WECHAT_API_BASE"],
                "redis_url": queues.redis_url(app)}
    if provider == "wecom_robot":
        return {"api_base": config["WECOM_API_BASE"], "redis_url": queues.redis_url(app)}
    if provider in ("broadcast", "webhook"):
        return {"destination": registered_destination,
                "timeout": config["BROADCAST_TIMEOUT_SECONDS"]}
    if provider == "weibo":
        return {"access_token": config["WEIBO_ACCESS_TOKEN"], "api_base": config["WEIBO_API_BASE"],
                "rip": config["WEIBO_RIP"]}
    return {"mqtt_url": config["MQTT_URL"], "redis_url": queues.redis_url(app),
            "signing_key_path": config["SIGNING_KEY_PATH"],
            "command_ttl_seconds": 3600}


def registered_destination(address: str) -> Destination | None:
    """A broadcast or webhook delivery's destination (its address is the registry's number),
    read at each send so a changed URL or secret applies at once; None once removed."""
    with engine().connect() as conn:
        row = destinations.get(conn, int(address))
    return Destination(row.url, row.secret) if row else None


def outbox_path(app: Flask) -> str:
    return os.path.join(app.instance_path, "outbox.jsonl")


def sender(channel: str) -> Channel:
    app = current_app._get_current_object()
    senders = app.extensions.setdefault("senders", {})
    if channel not in senders:
        provider = provider_for(app.config, channel)
        if provider is None:
            raise LookupError(f"channel {channel} has no provider and the outbox fallback is off")
        senders[channel] = registry.build(provider, settings_for(app, channel, provider))
    return senders[channel]


def limiter(channel: str) -> RateLimiter:
    app = current_app._get_current_object()
    limiters = app.extensions.setdefault("limiters", {})
    if channel not in limiters:
        provider = provider_for(app.config, channel)
        limiters[channel] = RateLimiter(queues.connection(app), f"{channel}:{provider}",
                                        rate(app.config, channel))
    return limiters[channel]


def send_sms_now(phone: str, rendered) -> None:
    """An SMS that is no notice's delivery (a registration code, a grid worker's nudge),
    through the SMS channel's sender, in turn with the notices it is sending."""
    sms_limiter = limiter("sms")
    sms_limiter.wait_turn()
    try:
        sender("sms").send(Outgoing(delivery_id=0, announcement_id=0, address=phone,
                                    rendered=rendered))
    finally:
        sms_limiter.finished()


def render_context(app: Flask | None = None) -> RenderContext:
    config = (app or current_app).config
    return RenderContext(office_name=config["OFFICE_NAME"], office_name_en=config["OFFICE_NAME_EN"],
                         sms_signature=config["SMS_SIGNATURE"],
                         sms_signature_latin=config["SMS_SIGNATURE_LATIN"],
                         public_base_url=config["PUBLIC_BASE_URL"],
                         time_zone=config["OFFICE_TIMEZONE"])


def callback_url(channel: str, delivery_id: int) -> str | None:
    """Where the provider reports this delivery's status; the id is in the path and signed."""
    provider = provider_for(current_app.config, channel)
    if provider not in ("twilio_sms", "twilio_voice"):
        return None
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/webhooks/twilio/{channel}/{delivery_id}"
