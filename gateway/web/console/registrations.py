"""Self-registrations in the console: admins review them (approve, merging by phone, or reject)
and print each village's poster, whose QR code opens its /join page."""
from __future__ import annotations

import segno
from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, url_for
from flask_babel import force_locale, gettext as _, lazy_gettext as N_
from sqlalchemy import select

from audiences import areas as area_codes
from gateway.store import audit, registrations
from gateway.store.db import engine
from gateway.store.schema import areas
from gateway.web.console import queries
from gateway.web.console.auth import role_required
from gateway.web.console.errors import forbidden

bp = Blueprint("registrations", __name__)
bp.register_error_handler(403, forbidden)

#: What the poster says, in Chinese and, smaller, in English, whatever the console's language.
POSTER_LINES = (
    N_("Scan to register for official government notices"),
    N_("Warnings and evacuation notices reach you by SMS, a phone call or WeChat."),
    N_("Your phone is confirmed with a code by SMS; needs such as sight or hearing are optional, "
       "each with its own consent."),
    N_("See, change or delete your registration at any time on the same page."),
)
POSTER_LANGUAGES = ("zh", "en")


@bp.route("/registrations")
@role_required("admin")
def review():
    with engine().begin() as conn:
        waiting = registrations.pending(conn)
        area_names = queries.area_names(conn)
        audit.record(conn, g.user.name, "view_registrations", "registrations",
                     {"pending": len(waiting)})
    villages = sorted(code for code in area_names if area_codes.level(code) == "village")
    return render_template("console/registrations.html", waiting=waiting, area_names=area_names,
                           villages=villages)


@bp.post("/registrations/<int:registration_id>/<any(approve, reject):decision>")
@role_required("admin")
def decide(registration_id: int, decision: str):
    """Approve (onto the roster, merged by phone) or reject (what it gave is deleted)."""
    act = registrations.approve if decision == "approve" else registrations.reject
    try:
        with engine().begin() as conn:
            act(conn, registration_id, g.user.name)
    except registrations.ReviewError:
        abort(404)
    flash(_("The registration was approved: the resident is on the roster.")
          if decision == "approve" else
          _("The registration was rejected and what it gave deleted."), "success")
    return redirect(url_for("registrations.review"))


@bp.route("/registrations/poster/<code>")
@role_required("admin")
def poster(code: str):
    """An A4 page to print and put up in the village: its QR code and address."""
    with engine().connect() as conn:
        village = conn.execute(select(areas).where(areas.c.code == code)).first()
    if village is None or area_codes.level(code) != "village":
        abort(404)
    url = f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/join/{village.code}"
    qr = segno.make(url, error="m").svg_data_uri(scale=10, border=2)
    lines = {}
    for language in POSTER_LANGUAGES:
        with force_locale(language):
            lines[language] = [str(line) for line in POSTER_LINES]
    return render_template("console/poster.html", village=village, url=url, qr=qr, lines=lines)
