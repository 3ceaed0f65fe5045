"""The JSON API under /api/v1. Its paths are a contract with other systems.

Every error is JSON that says what is wrong and where; no input yields a 500.
Callers authenticate with ``Authorization: Bearer <token>`` (tokens are made
with ``flask --app wsgi tokens create NAME``).
"""
from __future__ import annotations

from functools import wraps

from sqlalchemy import func, select
from flask import Blueprint, Response, current_app, g, jsonify, request, url_for

from audiences.areas import AreaError, CsvErrors, normalize
from channels import outbox
from gateway.delivery import disclosure, imports, lifecycle, preview, providers, reach, reports
from gateway.store import accounts, audit, roster
from gateway.store.schema import residents
from gateway.store.roster import beneath
from gateway.store.db import engine
from gateway.web.hardening import LAST_PAGE, body_limit
from messages.announcement import ValidationError, parse_announcement

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_PAGE = 500


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400, field: str | None = None, **extra):
        super().__init__(message)
        self.message, self.status, self.field, self.extra = message, status, field, extra


@bp.errorhandler(ApiError)
def _api_error(error: ApiError):
    body = {"error": error.message, **error.extra}
    if error.field:
        body["field"] = error.field
    return jsonify(body), error.status


@bp.errorhandler(ValidationError)
def _validation_error(error: ValidationError):
    return jsonify({"error": error.message, "field": error.field}), 422


@bp.errorhandler(lifecycle.ActionRefused)
def _refused(error: lifecycle.ActionRefused):
    return jsonify({"error": error.message}), error.status


@bp.errorhandler(CsvErrors)
def _csv_errors(error: CsvErrors):
    return jsonify({"error": "the CSV file has errors; nothing was imported",
                    "rows": imports.error_rows(error), "more_errors": error.omitted}), 422


def token_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise ApiError("send an API token as 'Authorization: Bearer <token>'", 401)
        with engine().connect() as conn:
            user = accounts.user_for_token(conn, header[7:].strip())
        if user is None:
            raise ApiError("the API token is not valid", 401)
        if user.role == accounts.GRID_WORKER:  # their phone page is all that is theirs
            raise ApiError("grid workers use their page in the console, not the API", 403)
        g.user = user
        return view(*args, **kwargs)
    return wrapped


def role_required(*roles: str):
    """Only these roles (after ``token_required``): personal data is for those who act on it."""
    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if g.user.role not in roles:
                raise ApiError(f"this needs the role {' or '.join(roles)}; "
                               f"your role is {g.user.role}", 403)
            return view(*args, **kwargs)
        return wrapped
    return decorate


def json_body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError("the request body must be a JSON object (Content-Type: application/json)", 400)
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object, not a list or a value", 400)
    return data


def page_args() -> tuple[int, int]:
    try:
        page = int(request.args.get("page", 1))
        per_page = int(request.args.get("per_page", 100))
    except ValueError:
        raise ApiError("page and per_page must be whole numbers", 400, "page") from None
    if not 1 <= page <= LAST_PAGE or not 1 <= per_page <= MAX_PAGE:
        raise ApiError(f"page is 1 to {LAST_PAGE} and per_page is 1 to {MAX_PAGE}", 400, "page")
    return page, per_page


@bp.post("/announcements")
@token_required
def create_announcement():
    data = parse_announcement(json_body())
    with engine().begin() as conn:
        announcement_id = lifecycle.create(conn, data, g.user, sender=current_app.config["CAP_SENDER"])
        row = lifecycle.get(conn, announcement_id)
    lifecycle.queue_speech(announcement_id, data)
    return jsonify({"id": row.id, "identifier": row.identifier, "state": row.state}), 201


@bp.get("/announcements/<int:announcement_id>")
@token_required
def announcement_status(announcement_id: int):
    with engine().connect() as conn:
        return jsonify(reports.status(conn, lifecycle.get(conn, announcement_id)))


@bp.post("/announcements/<int:announcement_id>/approve")
@token_required
def approve(announcement_id: int):
    with engine().begin() as conn:
        outcome = lifecycle.approve(conn, announcement_id, g.user)
    queued = lifecycle.follow_up(outcome)
    with engine().connect() as conn:
        body = reports.status(conn, lifecycle.get(conn, announcement_id))
    return jsonify({**body, "planning_queued": queued})


@bp.post("/announcements/<int:announcement_id>/reject")
@token_required
def reject(announcement_id: int):
    reason = json_body().get("reason")
    if not isinstance(reason, str):
        raise ApiError("give the reason as text", 422, "reason")
    with engine().begin() as conn:
        lifecycle.reject(conn, announcement_id, g.user, reason)
        row = lifecycle.get(conn, announcement_id)
    return jsonify({"id": row.id, "state": row.state})


@bp.post("/announcements/<int:announcement_id>/cancel")
@token_required
def cancel(announcement_id: int):
    data = request.get_json(silent=True) or {}
    correction = data.get("correction", "") if isinstance(data, dict) else ""
    if not isinstance(correction, str):
        raise ApiError("correction must be text", 422, "correction")
    with engine().begin() as conn:
        outcome = lifecycle.cancel(conn, announcement_id, g.user, correction=correction,
                                   sender=current_app.config["CAP_SENDER"],
                                   time_zone=current_app.config["OFFICE_TIMEZONE"])
        state = lifecycle.get(conn, announcement_id).state
    queued = lifecycle.follow_up(outcome)
    correction_id = outcome.to_plan[0] if outcome.to_plan else None
    return jsonify({"id": announcement_id, "state": state, "correction_id": correction_id,
                    "update_id": outcome.update_id, "planning_queued": queued})


@bp.get("/announcements/<int:announcement_id>/preview")
@token_required
def announcement_preview(announcement_id: int):
    """Counts for every role; for admins each weak segment links to its thin residents."""
    with engine().connect() as conn:
        body = preview.preview(conn, lifecycle.get(conn, announcement_id))
    if g.user.role == "admin":
        for segment in body["weak_segments"]:
            segment["residents_url"] = url_for(
                "api.thin_residents", announcement_id=announcement_id, town=segment["town"],
                age_band=segment["age_band"], impairment=segment["impairment"],
                language=segment["language"])
    return jsonify(body)


@bp.get("/announcements/<int:announcement_id>/thin")
@token_required
@role_required("admin")
def thin_residents(announcement_id: int):
    """The residents of one weak segment, with their paths: personal data, for admins."""
    town, band, impaired = (request.args.get(name, "") for name in ("town", "age_band",
                                                                     "impairment"))
    if not (town.isdigit() and len(town) == 9):
        raise ApiError("town is a town's 9-digit area code", 400, "town")
    if band not in preview.AGE_BAND_LABELS:
        raise ApiError(f"age_band is one of {', '.join(preview.AGE_BAND_LABELS)}", 400,
                       "age_band")
    if impaired not in preview.IMPAIRMENTS:
        raise ApiError(f"impairment is one of {', '.join(preview.IMPAIRMENTS)}", 400,
                       "impairment")
    language = preview.segment_language(request.args.get("language"))
    if language is False:
        raise ApiError("language is a canonical language tag (zh, yue, en, …)", 400, "language")
    with engine().begin() as conn:
        people = preview.thin_residents(conn, lifecycle.get(conn, announcement_id), town, band,
                                        impaired, language)
        audit.record(conn, g.user.name, "view_thin_residents", f"announcement:{announcement_id}",
                     {"via": "api", "town": town, "age_band": band, "impairment": impaired,
                      "language": language, "rows": len(people)})
    return jsonify({"announcement": announcement_id, "residents": people})


@bp.get("/announcements/<int:announcement_id>/disclosure")
@token_required
def disclosure_report(announcement_id: int):
    """The after-action report of a sent notice: counts only, for every role."""
    with engine().connect() as conn:
        row = lifecycle.get(conn, announcement_id)
        if not row.sent:
            raise ApiError("the announcement has not been sent: there is no report yet", 409)
        return jsonify(disclosure.report(conn, row))


@bp.get("/announcements/<int:announcement_id>/unreached")
@token_required
@role_required(*accounts.APPROVERS)
def unreached(announcement_id: int):
    """Names and phones for those who act on them; every export is in the audit log."""
    area = request.args.get("area") or None
    if area:
        _check_area_arg(area)
    section = request.args.get("section") or None
    if section and section not in reach.SECTIONS:
        raise ApiError(f"section is one of {', '.join(reach.SECTIONS)}", 400, "section")
    wants_csv = request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"
    if not wants_csv:
        page, per_page = page_args()
    with engine().begin() as conn:
        announcement = lifecycle.get(conn, announcement_id)
        if wants_csv:
            people, total = reports.unreached(conn, announcement, area=area, section=section,
                                              limit=1_000_000)
        else:
            people, total = reports.unreached(conn, announcement, area=area, section=section,
                                              limit=per_page, offset=(page - 1) * per_page)
            sections = reach.section_counts(conn, announcement, area=area)
        audit.record(conn, g.user.name, "export_unreached", f"announcement:{announcement_id}",
                     {"via": "api", "format": "csv" if wants_csv else "json",
                      "rows": len(people), "area": area})
    if wants_csv:
        return _unreached_csv(announcement_id, people)
    return jsonify({"announcement": announcement_id, "total": total, "sections": sections,
                    "page": page, "per_page": per_page, "residents": people})


def _unreached_csv(announcement_id: int, people: list[dict]) -> Response:
    text = reports.unreached_csv(people, ["name", "phone", "area_code", "section", "tried"])
    return Response(text, mimetype="text/csv",
                    headers={"Content-Disposition":
                             f"attachment; filename=unreached-{announcement_id}.csv"})


def _check_area_arg(code: str) -> None:
    try:
        normalize(code)
    except AreaError as error:
        raise ApiError(str(error), 400, "area") from None


@bp.post("/residents/import")
@body_limit("MAX_ROSTER_BYTES")
@token_required
@role_required("admin")
def import_residents():
    """A roster (CSV or .xlsx) as the body or a multipart file: imported here when small, else as a job."""
    upload = next(iter(request.files.values()), None)
    data = upload.read() if upload is not None else request.get_data()
    if not data:
        raise ApiError("send the roster (CSV or .xlsx) as the request body or a multipart file", 400)
    replace_area = request.args.get("replace_area") or None
    if replace_area:
        try:
            with engine().connect() as conn:
                replace_area = roster.registered_area(conn, replace_area)
        except AreaError as error:
            raise ApiError(str(error), 400, "replace_area") from None
    sheet = request.args.get("sheet") or None
    if len(data) <= imports.INLINE_BYTES:
        with engine().begin() as conn:
            result = roster.import_residents(conn, data, g.user.name, replace_area=replace_area, sheet=sheet)
        return jsonify(result.as_dict()), 201
    import_id = imports.save_upload(data, actor=g.user.name, sheet=sheet,
                                    filename=upload.filename if upload is not None else "")
    imports.start(import_id, replace_area=replace_area)
    progress = f"{bp.url_prefix}/residents/imports/{import_id}"
    return jsonify({"import_id": import_id, "status": "queued", "progress": progress}), 202, \
        {"Location": progress}


@bp.get("/residents/imports/<import_id>")
@token_required
@role_required("admin")
def roster_import(import_id: str):
    record = imports.status(import_id)
    if record is None or record["status"] == "uploaded":
        raise ApiError(f"there is no roster import {import_id}", 404)
    return jsonify(record)


@bp.get("/residents")
@token_required
@role_required("admin")
def list_residents():
    area = request.args.get("area")
    page, per_page = page_args()
    query = select(residents)
    total_query = select(func.count()).select_from(residents)
    if area:
        _check_area_arg(area)
        query = query.where(beneath(residents.c.area_code, [area]))
        total_query = total_query.where(beneath(residents.c.area_code, [area]))
    with engine().connect() as conn:
        total = conn.execute(total_query).scalar_one()
        rows = conn.execute(query.order_by(residents.c.area_code, residents.c.id)
                            .limit(per_page).offset((page - 1) * per_page)).all()
    return jsonify({"total": total, "page": page, "per_page": per_page,
                    "residents": [_resident_json(row) for row in rows]})


def _resident_json(row) -> dict:
    return {"id": row.id, "name": row.name, "phone": row.phone,
            "wechat_openid": row.wechat_openid, "area_code": row.area_code,
            "birth_year": row.birth_year, "visually_impaired": row.visually_impaired,
            "hearing_impaired": row.hearing_impaired, "has_smartphone": row.has_smartphone,
            "language": row.language, "spoken_language": row.spoken_language,
            "opt_out": [c for c in row.opt_out.split(";") if c],
            "test_audience": row.test_audience, "retired": row.retired_at is not None}


@bp.get("/outbox")
@token_required
@role_required("admin")
def list_outbox():
    page, per_page = page_args()
    announcement = request.args.get("announcement")
    if announcement is not None and not announcement.isdigit():
        raise ApiError("announcement must be an announcement number", 400, "announcement")
    records, total = outbox.read(providers.outbox_path(current_app),
                                 announcement_id=int(announcement) if announcement else None,
                                 channel=request.args.get("channel") or None,
                                 offset=(page - 1) * per_page, limit=per_page)
    return jsonify({"total": total, "page": page, "per_page": per_page, "messages": records})
