"""Self-registration by QR code (/join/<village>), public: a resident registers with consent,
proves their phone with a code sent by SMS, and later sees, changes or deletes what is held.

The session keeps only the code's ticket (``join``: what was typed waits in Redis with the code,
``phone_codes.waiting_for``), then, for changes, that the phone was proved and until when
(``join_phone``, ``join_until``). Limits on codes are in
``gateway.delivery.phone_codes``; the data and consents in ``gateway.store.registrations``.
"""
from __future__ import annotations

import time

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from audiences import areas as area_codes
from audiences.residents import ROSTER_COLUMNS
from audiences.roster_cells import parse_cells
from channels.base import ChannelError
from channels.registry import PERSONAL_CHANNELS
from gateway.delivery import phone_codes
from gateway.store import registrations
from gateway.store.db import engine
from gateway.store.schema import areas
from gateway.web.console.errors import http_error_page

bp = Blueprint("join", __name__)
bp.register_error_handler(404, http_error_page)

LANGUAGES = ("zh", "en")
#: How long a proved phone may change its record before a new code is needed.
CHANGE_SECONDS = 15 * 60


def _village(code: str):
    """The registered village of the page, or 404."""
    try:
        code = area_codes.normalize(code)
    except area_codes.AreaError:
        abort(404)
    with engine().connect() as conn:
        row = conn.execute(select(areas).where(areas.c.code == code)).first()
    if row is None or area_codes.level(code) != "village":
        abort(404)
    return row


@bp.route("/join/<code>", methods=("GET", "POST"))
def register(code: str):
    village = _village(code)
    if request.method == "GET":
        return render_template("public/join.html", village=village, form={}, errors={})
    errors, entries = _read_registration(village.code)
    if not errors:
        errors["phone"] = _send_code(village.code, entries["phone"], entries["language"],
                                     purpose="register", entries=entries)
        if errors["phone"] is None:
            return redirect(url_for("join.verify", code=village.code))
    return render_template("public/join.html", village=village, form=request.form,
                           errors=errors), 422


def _read_registration(village_code: str) -> tuple[dict, dict]:
    """(field -> error, the entries) from the form; needs only with their own consent."""
    name = request.form.get("name", "").strip()
    language = request.form.get("language", "")
    values, problems = _roster_cells(name=name, phone=request.form.get("phone", ""),
                                     area_code=village_code)
    errors: dict[str, str] = {}
    for column, _problem in problems:
        if column == "name":
            errors["name"] = _("Enter your name (at most 100 characters).")
    if not values.get("phone"):
        errors["phone"] = _("Enter a mobile phone number that can receive SMS.")
    if language not in LANGUAGES:
        errors["language"] = _("Choose a language.")
    if not request.form.get("consent_contact"):
        errors["consent_contact"] = _("Registration needs this consent: without it we cannot "
                                      "send you notices.")
    needs = _needs_with_consent(errors)
    return errors, {"name": name, "phone": values.get("phone"), "language": language,
                    "uses_wechat": request.form.get("uses_wechat") == "yes", "needs": needs}


def _roster_cells(**cells: str) -> tuple[dict, list[tuple[str, str]]]:
    """Cells checked by the roster's own rules (a phone normalised to E.164, or ``None``)."""
    return parse_cells({**{column: "" for column in ROSTER_COLUMNS},
                        **{column: cell.strip() for column, cell in cells.items()}})


def _needs_with_consent(errors: dict) -> list[str]:
    needs = []
    for need in registrations.NEEDS:
        if request.form.get(f"need_{need}"):
            if request.form.get(f"consent_{need}"):
                needs.append(need)
            else:
                errors[f"need_{need}"] = _("Tick the consent beside this need, or untick the "
                                           "need: it is not used without your consent.")
    return needs


def _send_code(village_code: str, phone: str, language: str, **waiting) -> str | None:
    """Send a code; what waits for it (the ``purpose`` and, to register, the ``entries``) is
    kept with it, the session keeps its ticket. The error to show when none was sent."""
    try:
        ticket = phone_codes.send_code(phone, request.remote_addr or "unknown", language, waiting)
    except phone_codes.CodeRefused as refused:
        return _refusal(refused)
    except ChannelError:
        return _("The code could not be sent to this number. Check it and try again later.")
    session["join"] = {"ticket": ticket, "village": village_code}
    return None


def _refusal(refused: phone_codes.CodeRefused) -> str:
    minutes = max(1, -(-refused.seconds // 60))
    if refused.reason == "wait":
        return _("A code was sent to this number just now. Wait %(seconds)d seconds before "
                 "asking for another.", seconds=refused.seconds)
    if refused.reason == "number":
        return _("Too many codes were sent to this number. Try again in %(minutes)d minutes.",
                 minutes=minutes)
    if refused.reason == "address":
        return _("Too many attempts from this network. Try again in %(minutes)d minutes.",
                 minutes=minutes)
    if refused.reason == "tries":
        return _("Too many wrong codes: this code no longer works. Ask for a new one.")
    return _("The code has expired. Ask for a new one.")


@bp.route("/join/<code>/verify", methods=("GET", "POST"))
def verify(code: str):
    village = _village(code)
    ticket = session.get("join", {}).get("ticket")
    pending = phone_codes.waiting_for(ticket) if ticket else None
    if pending is None or session["join"]["village"] != village.code:
        if ticket:
            flash(_("The code has expired. Ask for a new one."), "error")
        session.pop("join", None)
        return redirect(url_for("join.register", code=village.code))
    error = None
    if request.method == "POST":
        try:
            if phone_codes.check_code(ticket, request.form.get("code", ""),
                                      request.remote_addr or "unknown"):
                session.pop("join")
                return _verified(village, pending)
            error = _("That code is not right. Check the SMS and try again.")
        except phone_codes.CodeRefused as refused:
            session.pop("join")
            flash(_refusal(refused), "error")
            return redirect(url_for("join.manage" if pending["purpose"] == "manage"
                                    else "join.register", code=village.code))
    return render_template("public/join_verify.html", village=village, error=error,
                           phone=pending["phone"]), 422 if error else 200


def _verified(village, pending: dict):
    if pending["purpose"] == "manage":
        session["join_phone"] = pending["phone"]
        session["join_until"] = time.time() + CHANGE_SECONDS
        return redirect(url_for("join.mine", code=village.code))
    entries = pending["entries"]
    consents = ("contact", *entries["needs"])
    with engine().begin() as conn:
        registrations.submit(conn, registrations.Registration(
            area_code=village.code, name=entries["name"], phone=entries["phone"],
            language=entries["language"], uses_wechat=entries["uses_wechat"],
            needs=tuple(entries["needs"]), consents=consents))
    return render_template("public/join_done.html", village=village)


@bp.route("/join/<code>/manage", methods=("GET", "POST"))
def manage(code: str):
    """See, change or delete what is held: first a code to the phone."""
    village = _village(code)
    error = None
    if request.method == "POST":
        phone = _phone_of(request.form.get("phone", ""))
        if phone is None:
            error = _("Enter a mobile phone number that can receive SMS.")
        else:
            error = _send_code(village.code, phone, session.get("language", "zh"),
                               purpose="manage")
            if error is None:
                return redirect(url_for("join.verify", code=village.code))
    return render_template("public/join_manage.html", village=village, error=error), \
        422 if error else 200


def _phone_of(text: str) -> str | None:
    return _roster_cells(phone=text)[0].get("phone")


@bp.route("/join/<code>/mine", methods=("GET", "POST"))
def mine(code: str):
    village = _village(code)
    phone = session.get("join_phone")
    if phone is None or session.get("join_until", 0) < time.time():
        flash(_("To see or change your record, ask for a new code."), "warning")
        return redirect(url_for("join.manage", code=village.code))
    if request.method == "POST":
        return _change_or_delete(village, phone)
    with engine().begin() as conn:
        held = registrations.shown_to_resident(conn, phone)
    return render_template("public/join_mine.html", village=village, held=held,
                           channels=PERSONAL_CHANNELS, needs=registrations.NEEDS)


def _change_or_delete(village, phone: str):
    if request.form.get("action") == "delete":
        if not request.form.get("confirm_delete"):
            flash(_("Nothing was deleted: tick the box to confirm first."), "error")
            return redirect(url_for("join.mine", code=village.code))
        with engine().begin() as conn:
            registrations.erase(conn, phone)
        session.pop("join_phone", None)
        session.pop("join_until", None)
        return render_template("public/join_deleted.html", village=village)
    language = request.form.get("language", "zh")
    resident_id = request.form.get("resident", type=int)
    if language not in LANGUAGES or resident_id is None:
        abort(400)
    if request.form.get("extreme_only"):
        opt_out = PERSONAL_CHANNELS
    else:
        opt_out = tuple(c for c in PERSONAL_CHANNELS if not request.form.get(f"channel_{c}"))
    needs = tuple(n for n in registrations.NEEDS
                  if request.form.get(f"need_{n}") and request.form.get(f"consent_{n}"))
    try:
        with engine().begin() as conn:
            registrations.change(conn, phone, resident_id, language=language, needs=needs,
                                 opt_out=opt_out)
    except registrations.ReviewError:
        abort(404)
    flash(_("Your changes were saved."), "success")
    return redirect(url_for("join.mine", code=village.code))
