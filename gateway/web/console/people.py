"""Residents (search, edit, roster upload), loudspeaker devices and who was not reached."""
from __future__ import annotations

import os

from flask import (Blueprint, Response, abort, flash, g, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _

from audiences.areas import AreaError, CsvErrors
from audiences.residents import ROSTER_COLUMNS, Roster
from audiences.roster_headers import CHINESE_HEADERS
from gateway.delivery import imports, lifecycle, preview, reach, reports
from gateway.store import audit, roster, speakers
from gateway.store.accounts import APPROVERS
from gateway.web.console import queries
from gateway.web.console.wording import delivery_try
from gateway.web.console.errors import (bad_area, details_deleted, forbidden,
                                        no_such_announcement)
from gateway.web.console.auth import login_required, role_required
from gateway.store.db import engine
from gateway.web.hardening import body_limit, clamped_page

bp = Blueprint("people", __name__)
bp.register_error_handler(lifecycle.ActionRefused, no_such_announcement)
bp.register_error_handler(403, forbidden)
bp.register_error_handler(AreaError, bad_area)
bp.register_error_handler(reports.DetailsDeleted, details_deleted)

PER_PAGE = 50
FLAG_COLUMNS = ("visually_impaired", "hearing_impaired", "has_smartphone", "test_audience")
UNREACHED_PRINT_LIMIT = 5000
#: Rows of an uploaded roster shown as understood before it is imported.
PREVIEW_ROWS = 10


@bp.route("/residents")
@role_required("admin")
def residents_list():
    text = request.args.get("q", "").strip()
    page = clamped_page(request.args.get("page", type=int))
    with engine().connect() as conn:
        rows, total = queries.search_residents(conn, text, limit=PER_PAGE,
                                               offset=(page - 1) * PER_PAGE)
        area_names = queries.area_names(conn)
    return render_template("console/residents.html", residents=rows, total=total, q=text,
                           page=page, per_page=PER_PAGE, area_names=area_names)


@bp.route("/residents/<int:resident_id>/edit", methods=("GET", "POST"))
@role_required("admin")
def edit_resident(resident_id: int):
    with engine().connect() as conn:
        row = queries.get_resident(conn, resident_id)
    if row is None:
        abort(404)
    if request.method == "GET":
        return render_template("console/resident_edit.html", resident=row,
                               cells=_cells_of(row), errors={})
    cells = _cells_from_form()
    try:
        with engine().begin() as conn:
            saved = roster.update_resident(conn, resident_id, cells, g.user.name)
    except CsvErrors as problems:
        errors = {error.column or "name": error.message for error in problems.errors}
        return render_template("console/resident_edit.html", resident=row, cells=cells,
                               errors=errors), 422
    flash(_("The resident was saved."), "success")
    return redirect(url_for("people.residents_list", q=saved.name))


def _cells_of(row) -> dict:
    cells = {column: "" if getattr(row, column) is None else str(getattr(row, column))
             for column in ROSTER_COLUMNS}
    for column in FLAG_COLUMNS:
        cells[column] = "1" if getattr(row, column) else "0"
    return cells


def _cells_from_form() -> dict:
    cells = {column: request.form.get(column, "").strip() for column in ROSTER_COLUMNS}
    for column in FLAG_COLUMNS:
        cells[column] = "1" if request.form.get(column) else "0"
    return cells


@bp.route("/residents/import", methods=("GET", "POST"))
@body_limit("MAX_ROSTER_BYTES")
@role_required("admin")
def import_roster():
    """Upload a roster, then see it as understood (column → field, the first rows) before importing."""
    if request.method == "GET":
        return render_template("console/import.html", problems=None)
    upload = request.files.get("roster")
    if upload is None or not upload.filename:
        flash(_("Choose a roster file (CSV or Excel workbook) to upload."), "error")
        return render_template("console/import.html", problems=None), 400
    data = upload.read()
    sheet = request.form.get("sheet", "").strip() or None
    with engine().connect() as conn:
        known = roster.known_areas(conn)
    try:
        reading = Roster(data, known_area=known.__contains__, sheet=sheet)
        shown = reading.preview(PREVIEW_ROWS)
        if len(data) <= imports.INLINE_BYTES:  # small enough to check whole at once
            for _row in Roster(data, known_area=known.__contains__, sheet=sheet).residents():
                pass
    except CsvErrors as problems:
        return render_template("console/import.html", problems=problems, filename=upload.filename), 422
    import_id = imports.save_upload(data, actor=g.user.name, filename=upload.filename, sheet=sheet)
    fields = [field for _label, field in reading.columns if field is not None]
    return render_template("console/import_preview.html", import_id=import_id, filename=upload.filename,
                           reading=reading, fields=fields, rows=shown,
                           area=next((cells["area_code"] for _line, cells, _e in shown), ""))


@bp.post("/residents/import/<import_id>")
@role_required("admin")
def run_import(import_id: str):
    record = imports.status(import_id)
    if record is None or record["status"] != "uploaded":
        abort(404)
    replace_area = request.form.get("replace_area", "").strip() if request.form.get("replace") else None
    if replace_area:
        try:
            with engine().connect() as conn:
                replace_area = roster.registered_area(conn, replace_area)
        except AreaError:
            flash(_("“%(area)s” is not a registered area: nothing was imported.",
                    area=replace_area), "error")
            return redirect(url_for("people.import_roster"))
    small = os.path.getsize(imports.upload_path(import_id)) <= imports.INLINE_BYTES
    imports.start(import_id, replace_area=replace_area, here=small)
    record = imports.status(import_id)
    if record["status"] == "done":
        flash(_("Imported: %(added)d residents added, %(updated)d updated, %(retired)d retired.",
                **{key: record["result"][key] for key in ("added", "updated", "retired")}), "success")
        return redirect(url_for("people.residents_list"))
    if record["status"] == "failed":
        return render_template("console/import_progress.html", record=record), 422
    return redirect(url_for("people.import_progress", import_id=import_id))


@bp.route("/residents/imports/<import_id>")
@role_required("admin")
def import_progress(import_id: str):
    record = imports.status(import_id)
    if record is None or record["status"] == "uploaded":
        abort(404)
    return render_template("console/import_progress.html", record=record)


@bp.route("/residents/import/template-<style>.csv")
@role_required("admin")
def roster_template(style: str):
    """An empty roster with every column, headed in English (the field names) or in Chinese."""
    if style not in ("en", "zh"):
        abort(404)
    header = ROSTER_COLUMNS if style == "en" else [CHINESE_HEADERS[column] for column in ROSTER_COLUMNS]
    return Response("\ufeff" + ",".join(header) + "\r\n", mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename=roster-template-{style}.csv"})


@bp.route("/devices")
@login_required
def devices():
    with engine().connect() as conn:
        rows = queries.all_devices(conn)
        area_names = queries.area_names(conn)
        languages = speakers.device_languages(conn, [row.id for row in rows])
        village_languages = speakers.area_languages(conn, {row.area_code for row in rows})
    return render_template("console/devices.html", devices=rows, area_names=area_names,
                           languages=languages, village_languages=village_languages)


@bp.post("/devices/languages")
@role_required("admin")
def device_languages():
    """Set the languages a village's loudspeakers (``area_code``) or one device's
    (``device_id``) speak, in order; an empty list clears them."""
    area_code, device_id = request.form.get("area_code"), request.form.get("device_id")
    try:
        chosen = speakers.parse_languages([request.form.get("languages", "")])
        with engine().begin() as conn:
            if device_id:
                speakers.set_device_languages(conn, device_id, chosen, g.user.name)
            else:
                speakers.set_area_languages(conn, area_code or "", chosen, g.user.name)
    except speakers.SpeakerLanguageError:
        flash(_("“%(languages)s” is not a list of at most %(count)d known languages (e.g. cmn yue), "
                "or the village or device is unknown: nothing was changed.",
                languages=request.form.get("languages", "")[:64], count=speakers.MAX_LANGUAGES),
              "error")
        return devices(), 400
    flash(_("The loudspeakers' languages were saved."), "success")
    return redirect(url_for("people.devices"), 303)


@bp.route("/announcements/<int:announcement_id>/unreached")
@role_required(*APPROVERS)
def unreached(announcement_id: int):
    """A printable list for grid workers, in two sections (not reached; reached but not
    confirmed where confirmation is required), village by village."""
    area = request.args.get("area") or None
    with engine().begin() as conn:
        announcement = lifecycle.get(conn, announcement_id)
        people, total = reports.unreached(conn, announcement, area=area,
                                          limit=UNREACHED_PRINT_LIMIT)
        sections = reach.section_counts(conn, announcement, area=area)
        area_names = queries.area_names(conn)
        _record_export(conn, announcement_id, "page", len(people), area)
    by_section: dict[str, dict[str, list]] = {section: {} for section in reach.SECTIONS}
    for person in people:
        by_section[person["section"]].setdefault(person["area_code"], []).append(person)
    return render_template("console/unreached.html", a=announcement, by_section=by_section,
                           sections=sections, total=total, shown=len(people), area=area,
                           area_names=area_names,
                           confirmation_required=announcement.severity in reach.CONFIRM_SEVERITIES)


@bp.route("/announcements/<int:announcement_id>/unreached.csv")
@role_required(*APPROVERS)
def unreached_csv(announcement_id: int):
    area = request.args.get("area") or None
    with engine().begin() as conn:
        announcement = lifecycle.get(conn, announcement_id)
        people, _total = reports.unreached(conn, announcement, area=area, limit=1_000_000)
        area_names = queries.area_names(conn)
        _record_export(conn, announcement_id, "csv", len(people), area)
    text = reports.unreached_csv(
        people, [_("Name"), _("Phone"), _("Area code"), _("Area"), _("Section"), _("Tried")],
        area_names, {reach.NOT_REACHED: _("Not reached"),
                     reach.UNCONFIRMED: _("Reached, not confirmed")}, describe_try=delivery_try)
    return Response(text, mimetype="text/csv",
                    headers={"Content-Disposition":
                             f"attachment; filename=unreached-{announcement_id}.csv"})


def _record_export(conn, announcement_id: int, form: str, rows: int, area: str | None) -> None:
    """Names and phones leaving the gateway: who took them, of which announcement, how many."""
    audit.record(conn, g.user.name, "export_unreached", f"announcement:{announcement_id}",
                 {"via": "console", "format": form, "rows": rows, "area": area})


@bp.route("/announcements/<int:announcement_id>/thin")
@role_required("admin")
def thin_residents(announcement_id: int):
    """The residents of one weak segment of the preview (fewer than two independent paths),
    with what would add one: names, phones and impairments, so for admins only."""
    town, band, impaired = (request.args.get(name, "") for name in ("town", "age_band",
                                                                     "impairment"))
    language = preview.segment_language(request.args.get("language"))
    if not town.isdigit() or len(town) != 9 or band not in preview.AGE_BAND_LABELS \
            or impaired not in preview.IMPAIRMENTS or language is False:
        abort(400)
    with engine().begin() as conn:
        announcement = lifecycle.get(conn, announcement_id)
        people = preview.thin_residents(conn, announcement, town, band, impaired, language)
        area_names = queries.area_names(conn)
        audit.record(conn, g.user.name, "view_thin_residents", f"announcement:{announcement_id}",
                     {"town": town, "age_band": band, "impairment": impaired,
                      "language": language, "rows": len(people)})
    return render_template("console/thin.html", a=announcement, people=people, town=town,
                           band=band, impaired=impaired, area_names=area_names)
