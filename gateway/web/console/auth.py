"""Logging in and out, the session timeout, the lock after repeated failures, and roles.

A session cookie carries the user's session generation; logging out bumps it in
the users table, so a cookie copied before the logout is refused after it (all
of that user's console sessions end). Wrong passwords slow down that name from
that client address only (see ``gateway.store.accounts``), with one message
whether or not the name exists. ``next`` is followed only to a path on this
site: no scheme, no host, no ``//``, no backslash, no control character.
"""
from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from flask import (Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template,
                   request, session, url_for)
from flask_babel import gettext as _
from sqlalchemy import select

from gateway.store import accounts as users_service
from gateway.store.db import engine, utcnow
from gateway.store.schema import users

bp = Blueprint("auth", __name__)

LANGUAGES = ("zh", "en")
# Requests a page makes by itself (the watch poll) must not keep an idle session alive.
BACKGROUND_HEADER = "X-Console-Poll"


def session_timeout() -> timedelta:
    return timedelta(minutes=current_app.config.get("SESSION_MINUTES", 30))


@bp.before_app_request
def load_logged_in_user() -> None:
    g.user = None
    user_id = session.get("user_id")
    if user_id is None:
        return
    last_seen = session.get("last_seen", 0)
    now = datetime.now(timezone.utc).timestamp()
    if now - last_seen > session_timeout().total_seconds():
        _clear_session_keeping_language()
        g.session_expired = True
        return
    with engine().connect() as conn:
        g.user = conn.execute(select(users).where(users.c.id == user_id)).first()
    if g.user is not None and session.get("generation") != g.user.session_generation:
        g.user = None  # logged out since this cookie was issued
        _clear_session_keeping_language()
        return
    if g.user is not None and BACKGROUND_HEADER not in request.headers:
        session["last_seen"] = now


def login_required(view):
    """Any logged-in user but a grid worker, who sees only the pages made for them
    (``role_required`` naming ``grid_worker``): nothing else of the console is theirs."""
    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.user is None:
            if BACKGROUND_HEADER in request.headers:
                abort(401)
            if g.get("session_expired"):
                flash(_("Your session timed out. Please log in again."), "warning")
            return redirect(url_for("auth.login", next=request.full_path))
        if g.user.role == users_service.GRID_WORKER and not getattr(wrapped, "for_grid_workers",
                                                                     False):
            abort(403)
        return view(**kwargs)
    return wrapped


def role_required(*roles: str):
    def decorate(view):
        @functools.wraps(view)
        def checked(**kwargs):
            if g.user.role not in roles:
                abort(403)
            return view(**kwargs)
        guarded = login_required(checked)
        guarded.for_grid_workers = users_service.GRID_WORKER in roles
        return guarded
    return decorate


@bp.route("/login", methods=("GET", "POST"))
def login():
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        password = request.form.get("password", "")
        error = _check_login(name, password)
        if error is None:
            return redirect(_safe_next(request.args.get("next"), _home()))
        flash(error, "error")
    return render_template("console/login.html")


def _check_login(name: str, password: str) -> str | None:
    """Log the user in, or say why not; repeated failures from one address slow that name down.

    Every answer is the same, and takes as long, whether or not the name exists.
    """
    if not name or not password:
        return _("Enter your user name and password.")
    address = request.remote_addr or "unknown"
    with engine().begin() as conn:
        wait = users_service.login_wait(conn, name, address, utcnow())
        if wait:
            return _wait_message(wait)
        user = users_service.find_user(conn, name)
        if not users_service.password_matches(user, password):
            users_service.record_failed_login(conn, name, address)
            return _("The user name or password is wrong.")
        users_service.record_login(conn, user, address)
    _clear_session_keeping_language()
    session["user_id"] = user.id
    session["generation"] = user.session_generation
    session["last_seen"] = datetime.now(timezone.utc).timestamp()
    return None


def _wait_message(seconds: int) -> str:
    return _("Too many failed attempts: try again in %(minutes)d minutes.",
             minutes=max(1, math.ceil(seconds / 60)))


def _has_control_characters(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in text)


def _home() -> str:
    """Where a user lands after logging in: a grid worker on their grids' page."""
    with engine().connect() as conn:
        role = conn.execute(select(users.c.role).where(users.c.id == session["user_id"])).scalar()
    if role == users_service.GRID_WORKER:
        return url_for("grids.work")
    return url_for("announcements.index")


def _safe_next(target: str | None, home: str | None = None) -> str:
    """Only a path on this site, so the login page cannot be used to send people elsewhere.

    Browsers drop tabs and newlines and read ``\\`` as ``/``, so ``/\t/evil.example``
    or ``/\\evil.example`` would leave the site: any of these refuses the target.
    """
    if (target and target.startswith("/") and not target.startswith("//")
            and "\\" not in target and not _has_control_characters(target)):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return home or url_for("announcements.index")


@bp.post("/logout")
def logout():
    if g.user is not None:
        with engine().begin() as conn:
            users_service.end_sessions(conn, g.user.id)
    _clear_session_keeping_language()
    return redirect(url_for("auth.login"))


@bp.post("/language")
def choose_language():
    target = request.form.get("next")
    if target and _has_control_characters(target):
        abort(400)
    language = request.form.get("language")
    if language in LANGUAGES:
        session["language"] = language
    return redirect(_safe_next(target))


def _clear_session_keeping_language() -> None:
    language = session.get("language")
    session.clear()
    if language:
        session["language"] = language


@bp.post("/session/keepalive")
def keep_session():
    """The page's "stay signed in": an ordinary request, so it renews the session's idle time
    (``load_logged_in_user``); answers how long the session now lasts, or 401 if it has ended."""
    if g.user is None:
        return jsonify({"seconds": 0}), 401
    return jsonify({"seconds": int(session_timeout().total_seconds())})
