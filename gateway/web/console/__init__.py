"""The information office's web console, and the public full-text page residents open.

``init_app`` wires in translations (Chinese by default, English on request),
CSRF protection for the console's forms, the security headers every response
carries, and the console's blueprints. The console calls the same service
modules as the JSON API, so a rule holds whichever way a clerk works.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, flash, g, jsonify, redirect, request, session, url_for
from flask_babel import Babel, format_number, get_translations, gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect

from gateway.web.console import (admin, announcements, auth, destinations, grids, join, people,
                                 public, registrations, wording)
from gateway.web.console.errors import http_error_page
from gateway.web.console.auth import LANGUAGES
from messages import severity
from messages.speech import speak_numbers

DEFAULT_LANGUAGE = "zh"
BLUEPRINTS = (auth.bp, announcements.bp, people.bp, admin.bp, grids.bp, public.bp, join.bp,
              registrations.bp, destinations.bp)

# No inline script or style anywhere: everything comes from /static.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; media-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

csrf = CSRFProtect()
#: Forms the page's script sends itself: a refused one is answered in JSON, not a redirect.
SCRIPT_ENDPOINTS = {"announcements.render_draft", "announcements.draft_audio",
                    "auth.keep_session"}


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config.get("OFFICE_TIMEZONE") or
                          "Asia/Shanghai")
    # Only the console's forms carry a CSRF token; the API and provider webhooks
    # authenticate otherwise, so the check is switched on per blueprint below.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    # A form's token lives as long as the session (SESSION_MINUTES idle): an officer who types
    # for more than an hour must not find the form expired (Flask-WTF's default is 3600 s).
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    Babel(app, locale_selector=current_language)
    # Flask-Babel looks the catalogue up again for every string (a fifth of the
    # announcement page's time, 200+ strings); a request keeps one locale.
    app.jinja_env.install_gettext_callables(
        gettext=lambda string: _catalogue().ugettext(string),
        ngettext=lambda singular, plural, n: _catalogue().ungettext(singular, plural, n),
        pgettext=lambda context, string: _catalogue().upgettext(context, string),
        npgettext=lambda context, singular, plural, n: _catalogue().unpgettext(
            context, singular, plural, n),
        newstyle=True)
    csrf.init_app(app)
    app.after_request(_add_security_headers)
    app.register_error_handler(CSRFError, _csrf_failed)
    # HTTP errors on pages (no such page, too large a form) answer this page, in the user's language.
    app.extensions["error_page"] = http_error_page
    app.jinja_env.add_extension("jinja2.ext.do")
    app.jinja_env.filters["count_in_words"] = count_in_words
    app.jinja_env.filters["local_time"] = wording.local_time
    for name in ("field_label", "validation_message", "roster_problem", "audit_action",
                 "audit_target", "audit_detail", "language_name", "visit_outcome_labels"):
        app.jinja_env.globals[name] = getattr(wording, name)
    app.jinja_env.globals["AUDIT_ACTIONS"] = wording.AUDIT_ACTIONS
    app.jinja_env.globals["current_language"] = current_language
    app.jinja_env.globals["severity_words"] = severity_words
    app.jinja_env.globals["session_seconds"] = lambda: int(auth.session_timeout().total_seconds())
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    # After the blueprints, so the user is known (or their session found timed out) before
    # a form's token is checked, and a refused form can lead back to it.
    app.before_request(_protect_console_forms)


def _catalogue():
    """This request's translations, looked up once."""
    if "catalogue" not in g:
        g.catalogue = get_translations()
    return g.catalogue


def current_language() -> str:
    language = session.get("language")
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def severity_words(value: str, language: str | None = None) -> str:
    """A severity in China's four colours and levels, in the reader's language (or one given:
    the public page speaks the notice's)."""
    return severity.label(value, language or current_language())


def count_in_words(count: int) -> str:
    """A number as the confirm step says it: in Chinese also in characters (七百), hard to misread."""
    if current_language() == "zh":
        # The measure word makes speak_numbers read a quantity, not a phone number.
        return f"{format_number(count)}（{speak_numbers(f'{count}位', 'zh')[:-1]}）"
    return format_number(count)


def _protect_console_forms() -> None:
    if request.method == "POST" and request.blueprint in {bp.name for bp in BLUEPRINTS}:
        csrf.protect()


def _add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _csrf_failed(error: CSRFError):
    """A form whose token is no longer good: nothing typed is lost. The session timed out: log
    in again, then the compose page puts back the draft the browser kept. Still logged in: the
    compose form comes back filled in; any other form, its page again."""
    if g.get("user") is None and request.blueprint != auth.bp.name:
        flash(_("Your session timed out. Please log in again; what you typed in the compose "
                "form is kept in this browser."), "warning")
        target = url_for("announcements.compose") if _is_compose() else _form_page()
        return redirect(url_for("auth.login", next=target))
    if _is_compose():
        return announcements.compose_again(
            _("The form had to be renewed; nothing was sent. Check it and send it again."))
    message = _("The page had to be renewed; nothing was done. Please try again.")
    if request.endpoint in SCRIPT_ENDPOINTS:
        return jsonify({"error": message}), 400
    flash(message, "warning")
    return redirect(_form_page())


def _is_compose() -> bool:
    return request.endpoint == "announcements.compose"


def _form_page() -> str:
    """The page the refused form was on, when the browser says so and it is on this site."""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host and referrer.path.startswith("/"):
        return referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return url_for("announcements.index")
