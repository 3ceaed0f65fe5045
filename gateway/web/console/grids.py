"""Grids: the admin's registry page (grids and their workers), and the grid worker's phone page.

The phone page lists, per live notice, the people of the worker's grids still to be reached
(``gateway.delivery.fieldwork``); its buttons make taps that ``static/grid.js`` keeps in the
phone's storage until ``/grid/taps`` has taken them, so a visit made without a signal is
sent when the signal returns. Each tap carries an id the phone made: sent twice, it is
recorded once. Opening the page is a view of personal data, so it is audited.
"""
from __future__ import annotations

from flask import (Blueprint, Response, flash, g, jsonify, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _

from audiences.areas import AreaError
from gateway.delivery import fieldwork, lifecycle
from gateway.store import audit, grids
from gateway.store.accounts import GRID_WORKER
from gateway.store.db import engine
from gateway.web.console import queries
from gateway.web.console.auth import login_required, role_required
from gateway.web.console.errors import forbidden, no_such_announcement

bp = Blueprint("grids", __name__)
bp.register_error_handler(403, forbidden)
bp.register_error_handler(lifecycle.ActionRefused, no_such_announcement)

#: Taps one request may carry: a day's visits queued on a phone fit many times over.
MAX_TAPS = 200


@bp.route("/grid")
@role_required(GRID_WORKER)
def work():
    with engine().begin() as conn:
        notices = fieldwork.worklist(conn, g.user.id)
        mine = grids.grids_of(conn, g.user.id)
        audit.record(conn, g.user.name, "view", "grid_worklist",
                     {"grids": mine, "people": sum(len(n["people"]) for n in notices)})
        grid_names = grids.names(conn, mine)
    return render_template("console/grid_work.html", notices=notices, grids=mine,
                           grid_names=grid_names)


@bp.post("/grid/taps")
@role_required(GRID_WORKER)
def taps():
    """Record the taps a phone sends: ``{"taps": [...]}`` (see ``fieldwork.apply_tap``).

    Each tap in its own transaction, so one refused does not undo the others; the answer
    says per tap ``recorded``, ``already`` (sent before) or ``refused`` with why.
    """
    body = request.get_json(silent=True)
    sent = body.get("taps") if isinstance(body, dict) else None
    if not isinstance(sent, list) or not 0 < len(sent) <= MAX_TAPS:
        return jsonify(error=f"send {{\"taps\": [...]}} with 1 to {MAX_TAPS} taps"), 400
    results = []
    for tap in sent:
        tap_id = tap.get("id") if isinstance(tap, dict) else None
        try:
            with engine().begin() as conn:
                new = fieldwork.apply_tap(conn, g.user, tap)
            results.append({"id": tap_id, "status": "recorded" if new else "already"})
        except fieldwork.TapRefused as refused:
            results.append({"id": tap_id, "status": "refused", "error": str(refused)})
    return jsonify(results=results)


@bp.route("/grids", methods=("GET", "POST"))
@role_required("admin")
def registry():
    if request.method == "POST":
        _change_registry(request.form)
        return redirect(url_for("grids.registry"))
    with engine().connect() as conn:
        rows = grids.registry(conn)
        workers = grids.grid_worker_names(conn)
        names = queries.area_names(conn)
    return render_template("console/grids.html", grids=rows, workers=workers, area_names=names)


def _change_registry(form) -> None:
    action = form.get("action")
    code, worker = form.get("code", "").strip(), form.get("worker", "").strip()
    try:
        with engine().begin() as conn:
            if action == "add":
                code = grids.add_grid(conn, code, form.get("name", ""), g.user.name)
                flash(_("Grid %(code)s saved.", code=code), "success")
            elif action == "assign":
                grids.assign(conn, code, worker, g.user.name)
                flash(_("%(worker)s now works grid %(code)s.", worker=worker, code=code), "success")
            elif action == "unassign":
                grids.unassign(conn, code, worker, g.user.name)
                flash(_("%(worker)s no longer works grid %(code)s.", worker=worker, code=code),
                      "success")
            elif action == "phone":
                number = grids.set_phone(conn, worker, form.get("phone", ""), g.user.name)
                flash(_("%(worker)s's nudges go to %(phone)s.", worker=worker, phone=number)
                      if number else _("%(worker)s is not nudged by SMS.", worker=worker), "success")
            else:
                flash(_("Choose what to change."), "error")
    except AreaError as error:
        flash(_("Nothing was changed: “%(code)s” is not a grid code (a village's 12 digits and "
                "a 3-digit number, 001 to 999).", code=error.code), "error")
    except grids.GridError as error:
        flash(_("Nothing was changed: %(reason)s", reason=_grid_error(error)), "error")


def _grid_error(error: grids.GridError) -> str:
    details = error.details
    if error.reason == "bad_name":
        return _("a grid needs a name of 1 to %(most)d characters.", most=details["most"])
    if error.reason == "no_village":
        return _("village %(village)s is not in the area registry.", village=details["village"])
    if error.reason == "no_grid":
        return _("grid %(grid)s is not in the grid registry.", grid=details["grid"])
    if error.reason == "no_user":
        return _("there is no user named %(user)s.", user=details["user"])
    if error.reason == "bad_phone":
        return _("“%(phone)s” is not a valid phone number.", phone=details["phone"])
    return _("%(user)s is not a grid worker.", user=details["user"])


@bp.route("/announcements/<int:announcement_id>/grids")
@login_required
def report(announcement_id: int):
    """Per village and grid: reached by machine, in person, not reached, time to 90 %, the
    grid's workers and last visit. Counts and user names only, for every office role."""
    row, rows, names = _report(announcement_id)
    return render_template("console/grid_report.html", a=row, rows=rows, names=names)


@bp.route("/announcements/<int:announcement_id>/grids.csv")
@login_required
def report_csv(announcement_id: int):
    _row, rows, names = _report(announcement_id)
    header = [_("Village"), _("Grid"), _("Targeted"), _("Reached by machine"),
              _("Reached in person"), _("Not reached"), _("Seconds until nine in ten reached"),
              _("Grid workers"), _("Last visit"), _("Nudged by SMS")]
    return Response(fieldwork.grid_report_csv(rows, header, names), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f"attachment; filename=grids-{announcement_id}.csv"})


def _report(announcement_id: int):
    with engine().connect() as conn:
        row = lifecycle.get(conn, announcement_id)
        rows = fieldwork.grid_report(conn, row)
        names = {**queries.area_names(conn),
                 **grids.names(conn, [r["grid"] for r in rows if r["grid"]])}
    return row, rows, names
