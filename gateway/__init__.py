"""Tongbao's Flask application: the app factory.

``create_app`` reads the configuration once, opens the database, loads and
checks the channel policy (a bad rules file stops the app here, with its
message), and registers the blueprints and CLI commands.
"""
from __future__ import annotations

import os
import secrets

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from sqlalchemy.engine import make_url

from audiences.policy import load_policy
from gateway import config as settings
from gateway import logs
from gateway.store.db import make_engine
from gateway.web import hardening, request_ids
from messages import audio


def create_app(test_config: dict | None = None) -> Flask:
    environment = settings.from_env()
    app = Flask(__name__, instance_path=(test_config or {}).get("INSTANCE_PATH")
                or environment["TONGBAO_INSTANCE"] or None, instance_relative_config=True)
    app.config.from_mapping(environment)
    if test_config:
        app.config.update(test_config)
    logs.configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
    # The instance folder holds the database, the outbox (phones and texts), speech and keys:
    # the owner's alone.
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
    app.config["DATABASE_URL"] = app.config["DATABASE_URL"] or \
        "sqlite:///" + os.path.join(app.instance_path, "tongbao.db")
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or instance_secret(app.instance_path, "secret_key")
    app.config["PUBLIC_BASE_URL"] = app.config["PUBLIC_BASE_URL"] or \
        f"http://{app.config['HOST']}:{app.config['PORT']}"
    # Flask defines both keys (None, False), so ``setdefault`` would change nothing.
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.config["SESSION_COOKIE_SECURE"] = bool(app.config.get("SESSION_COOKIE_SECURE")) or \
        app.config["PUBLIC_BASE_URL"].lower().startswith("https://")
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["MEDIA_DIR"] = app.config["MEDIA_DIR"] or os.path.join(app.instance_path, "media")
    app.config["SIGNING_KEY_PATH"] = app.config["SIGNING_KEY_PATH"] or \
        os.path.join(app.instance_path, "loudspeaker-signing-key.pem")
    _private_sqlite_file(app.config["DATABASE_URL"])
    if app.config["TRUSTED_PROXIES"]:
        # The client's address (failed logins count per name and address) is the one the
        # proxies saw; only as many X-Forwarded-For entries as there are proxies are believed.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"], x_proto=0,
                                x_host=0, x_port=0, x_prefix=0)
    app.extensions["engine"] = make_engine(app.config["DATABASE_URL"])
    app.extensions["policy"] = load_policy(app.config["POLICY_FILE"])
    for language, voice in audio.missing_voices(app.config["SPEECH_VOICES"]).items():
        # Not fatal: synthesis then fails and calls use the provider's own text-to-speech.
        app.logger.warning("SPEECH_VOICES: espeak-ng has no voice %r (for %s); `espeak-ng "
                           "--voices` lists what it has, `flask --app wsgi doctor` checks each",
                           voice, language)

    from gateway.web import api, console, destination_feed, health, interop, metrics, webhooks
    from gateway import cli

    request_ids.init_app(app)  # first: a request refused by hardening has its id too
    hardening.init_app(app)  # before the blueprints: their routes take its id converter
    app.register_blueprint(api.bp)
    app.register_blueprint(interop.bp)
    app.register_blueprint(destination_feed.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    console.init_app(app)
    cli.register(app)
    return app


def _private_sqlite_file(url: str) -> None:
    """A SQLite database made here is readable by its owner only (0600, its folder 0700).

    SQLite would create the file with the process's umask (often 0644); an empty file is an
    empty database to it, and it gives its journal and WAL files the database's permissions.
    """
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" \
            or name.startswith("file:"):
        return
    path = os.path.abspath(name)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def instance_secret(instance_path: str, name: str) -> str:
    """A secret made once per installation (readable by the owner only) and kept in
    ``instance/<name>``: the session key, the embedded MQTT broker's gateway password."""
    path = os.path.join(instance_path, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    with open(path) as handle:
        return handle.read().strip()
