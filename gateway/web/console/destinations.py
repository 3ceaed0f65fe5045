"""Broadcast destinations in the console: the list with each one's latest delivery (one being
retried after an error shows as failing), and, for admins, adding and removing them. A new
destination's secret and feed token are shown once, on the page that follows the form."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, render_template, request
from flask_babel import gettext as _

from gateway.store import destinations
from gateway.store.accounts import APPROVERS
from gateway.store.db import engine
from gateway.web.console import queries
from gateway.web.console.auth import role_required
from gateway.web.console.errors import forbidden

bp = Blueprint("destinations", __name__)
bp.register_error_handler(403, forbidden)


def _refusal(error: destinations.DestinationError) -> str:
    return {
        "name": _("Give the destination a name of at most 100 characters."),
        "taken": _("There is already a destination with that name."),
        "kind": _("Choose what kind of destination it is."),
        "area": _("That area code is not in the area registry."),
        "url": _("Give the full URL, starting with https:// (plain http only to this machine)."),
        "secret": _("The shared secret must be 16 to 128 characters; leave it empty to have one made."),
    }[error.field]


@bp.route("/destinations", methods=["GET", "POST"])
@role_required(*APPROVERS)
def destinations_page():
    added = None
    status = 200
    if request.method == "POST":
        if g.user.role != "admin":
            abort(403)
        try:
            added = _change(request.form)
        except destinations.DestinationError as error:
            flash(_refusal(error), "error")
            status = 422
    with engine().connect() as conn:
        rows = destinations.listed(conn)
        latest = destinations.last_deliveries(conn)
        area_names = queries.area_names(conn)
    return render_template("console/destinations.html", destinations=rows, latest=latest,
                           failing={row.id for row in rows
                                    if destinations.is_failing(latest.get(row.id))},
                           area_names=area_names, kinds=destinations.KINDS, added=added,
                           form=request.form if status == 422 else {}), status


def _change(form) -> destinations.Added | None:
    actor = g.user.name
    with engine().begin() as conn:
        if form.get("action") == "remove":
            destinations.remove(conn, form.get("name", ""), actor=actor)
            flash(_("The destination was removed."), "success")
            return None
        return destinations.add(conn, name=form.get("name", ""), kind=form.get("kind", ""),
                                area_code=form.get("area_code", ""), url=form.get("url", ""),
                                secret=form.get("secret") or None,
                                test_destination=form.get("test_destination") == "1",
                                actor=actor)
