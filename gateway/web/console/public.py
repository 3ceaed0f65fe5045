"""The full text of an announcement, for the link every SMS and WeChat message carries.

Public: residents open it without an account. Only announcements that were
released are shown; a withdrawn one says so at the top and links its correction.
Its texts in other languages follow its own.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from gateway.delivery import lifecycle
from gateway.web.console import queries
from gateway.store.db import engine

bp = Blueprint("public", __name__)

SHOWN_STATES = ("approved", "sending", "done", "cancelled", "superseded")


@bp.route("/a/<int:announcement_id>")
def full_text(announcement_id: int):
    with engine().connect() as conn:
        try:
            row = lifecycle.get(conn, announcement_id)
        except lifecycle.ActionRefused:
            abort(404)
        if row.state not in SHOWN_STATES:
            abort(404)
        correction_id = queries.latest_correction(conn, announcement_id)
        translations = lifecycle.translations(conn, announcement_id)
    return render_template("public/announcement.html", a=row, translations=translations,
                           correction_id=correction_id, office=current_app.config["OFFICE_NAME"])
