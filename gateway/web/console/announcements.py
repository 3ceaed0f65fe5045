"""Compose, preview, approve or reject, watch and correct announcements."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from types import SimpleNamespace

from flask import (Blueprint, Response, current_app, flash, g, jsonify, redirect, render_template,
                   request, session, url_for)
from flask_babel import gettext as _

from gateway.delivery import disclosure, lifecycle, preview, providers, reports
from gateway.store.accounts import APPROVERS
from gateway.web.console import queries
from gateway.web.console.wording import (LANGUAGE_NAMES, N_, language_name, office_time_zone,
                                         validation_error)
from gateway.web.console.errors import no_such_announcement
from gateway.web.console.auth import login_required
from gateway.store.db import engine
from messages import audio, speech
from messages.announcement import (CHANNELS, LANGUAGES, LIMITS, SEVERITIES, STATUSES,
                                   ValidationError, clean_text, parse_announcement)
from messages.render import render
from messages.script_check import script_mismatch
from messages.withdrawal import withdrawal_notice

bp = Blueprint("announcements", __name__)
bp.register_error_handler(lifecycle.ActionRefused, no_such_announcement)

COMPOSE_STATUSES = tuple(status for status in STATUSES if status != "draft")
FORM_FIELDS = ("headline", "body", "instruction", "severity", "status", "language", "expires",
               "msg_type", "references")
#: A translation's fields in the form, each ``translation_<name>``.
TRANSLATION_FIELDS = ("language", "headline", "body", "instruction")
# <input type="datetime-local"> sends local time without a zone: the office's (OFFICE_TIMEZONE).
LOCAL_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
FINISHED_STATES = ("done", "cancelled", "superseded", "rejected")
# Drafts have no id yet; their speech files are content-addressed, so identical drafts share one.
DRAFT_AUDIO_ID = 0
DRAFT_AUDIO_KEPT_SECONDS = 3600


#: Why a provider paused a channel, in words, by its error code: a pause's reason is the
#: ChannelError's text, which opens with the code in brackets (``[48001] …``). Marked with
#: N_ for the catalogue (pybabel extract knows N_) and translated when shown.
PAUSE_CAUSES = {
    "45009": N_("WeChat's daily message quota is used up; sending resumes after midnight "
                "China time."),
    "40013": N_("WeChat does not know the app id: check WECHAT_APP_ID."),
    "40125": N_("WeChat refused the app secret: check WECHAT_APP_SECRET."),
    "40164": N_("This server's IP address is not on the WeChat account's IP whitelist."),
    "40037": N_("WeChat does not know the template: check WECHAT_TEMPLATE_ID."),
    "48001": N_("The WeChat account has no permission to send template messages."),
    "48004": N_("WeChat has banned the account from sending template messages."),
    "50002": N_("WeChat has limited the account."),
}
PAUSE_CODE = re.compile(r"^\[([^\]]+)\]")


@bp.route("/")
@login_required
def index():
    with engine().connect() as conn:
        rows = queries.recent_announcements(conn)
        authors = queries.user_names(conn)
    return render_template("console/index.html", announcements=rows, authors=authors)


@bp.route("/announcements/new", methods=("GET", "POST"))
@login_required
def compose():
    """GET: an empty form (or one prefilled to update an announcement). POST: preview or submit."""
    if request.method == "GET":
        return _compose_page(_initial_form(request.args.get("update_of", type=int)),
                             restore_draft=True)
    form = _submitted_form()
    if "edit" in request.form:
        return _compose_page(form)
    try:
        data = parse_announcement(_as_input(form))
        with engine().begin() as conn:
            lifecycle.check_areas(conn, data.areas)
            lifecycle.replaced(conn, data)  # refused at the preview already, not only on submit
            if "submit" not in request.form:
                return _preview_page(conn, form, data)
            announcement_id = lifecycle.create(conn, data, g.user,
                                               sender=current_app.config["CAP_SENDER"])
    except ValidationError as error:
        return _compose_page(form, error), 422
    lifecycle.queue_speech(announcement_id, data)
    session["draft_sent"] = True  # the page after this one forgets the draft kept in the browser
    flash(_("Announcement %(id)d is waiting for a second person to approve it.",
            id=announcement_id), "success")
    return redirect(url_for("announcements.detail", announcement_id=announcement_id))


@bp.post("/announcements/draft.json")
@login_required
def render_draft():
    """The draft as each channel will send it, for the compose page while the clerk types; with
    each text's length against its limit (counted as the submit will count it) and whether the
    text looks written in another language than the one chosen."""
    form = _submitted_form()
    draft = _draft_view(form)
    context = providers.render_context()
    answer = {channel: _rendered_json(render(draft, channel, draft.language, context))
              for channel in CHANNELS}
    answer["counts"] = {name: {"characters": len(clean_text(form[name])), "limit": LIMITS[name]}
                        for name in ("headline", "body", "instruction")}
    text = " ".join(form[name] for name in ("headline", "body", "instruction"))
    answer["language_warning"] = draft.language if script_mismatch(text, draft.language) else ""
    return jsonify(answer)


@bp.post("/announcements/draft-audio")
@login_required
def draft_audio():
    """The draft's speech script as synthesized audio, for the compose page's play button."""
    draft = _draft_view(_submitted_form())
    text = speech.script(draft, draft.language, providers.render_context())
    audio.prune(current_app.config["MEDIA_DIR"], DRAFT_AUDIO_ID, DRAFT_AUDIO_KEPT_SECONDS)
    try:
        info = audio.ensure_audio(current_app.config["MEDIA_DIR"], DRAFT_AUDIO_ID, draft.language,
                                  text, rate=current_app.config["SPEECH_RATE"])
    except audio.SynthesisError:
        current_app.logger.exception("speech synthesis failed for a draft")
        return jsonify({"error": _("The speech could not be synthesized just now. "
                                   "Try again in a moment.")}), 503
    return jsonify({"url": url_for("webhooks.media_file", name=info.file_name),
                    "seconds": info.duration_seconds})


@bp.route("/announcements/<int:announcement_id>")
@login_required
def detail(announcement_id: int):
    with engine().connect() as conn:
        row = lifecycle.get(conn, announcement_id)
        status = reports.status(conn, row)
        names = queries.user_names(conn)
        area_names = queries.area_names(conn)
    return render_template("console/announcement.html", a=row, status=status,
                           rendered=_rendered_channels(row), names=names, area_names=area_names,
                           can_approve=_may_approve(row),
                           withdrawal_text=withdrawal_notice(row.language, row.headline,
                                                             row.sent or row.created_at,
                                                             providers.render_context()),
                           correction_limit=LIMITS["body"])


@bp.route("/announcements/<int:announcement_id>/progress.json")
@login_required
def progress(announcement_id: int):
    with engine().connect() as conn:
        row = lifecycle.get(conn, announcement_id)
        body = reports.status(conn, row)
        failed_total = sum(by_status["failed"] for by_status in body["deliveries"].values())
        failed = queries.failures(conn, announcement_id, failed_total)
        # The village table is most of the answer (~73 KB at 400 villages) and of its time:
        # sent only when it changed since the version the page says it holds.
        body["loudspeakers_version"] = queries.loudspeakers_version(conn, announcement_id)
        if request.args.get("loudspeakers_version") != body["loudspeakers_version"]:
            body["loudspeakers"] = queries.loudspeakers_by_village(conn, announcement_id)
        body["history"] = reports.latest_history(conn, row,
                                                 reports.total_deliveries(body["deliveries"]))
    body["finished"] = row.state in FINISHED_STATES and body["pending"] == 0
    # Addresses (phones, openids) only for those who act on failures; authors see the rest.
    show_address = g.user.role in APPROVERS
    body["failures"] = [{"channel": f.channel, "address": f.address if show_address else "",
                         "attempts": f.attempts, "error": f.last_error or "",
                         "at": f.updated_at.isoformat() if f.updated_at else None}
                        for f in failed]
    body["failures_total"] = failed_total
    for pause in body["paused_channels"].values():
        pause["cause"] = pause_cause(pause["reason"])
    return jsonify(body)


def pause_cause(reason: str) -> str:
    """A pause's reason in the reader's language; the provider's own text when not known."""
    code = PAUSE_CODE.match(reason)
    cause = PAUSE_CAUSES.get(code.group(1)) if code else None
    return _(cause) if cause is not None else reason


@bp.route("/announcements/<int:announcement_id>/disclosure")
@login_required
def disclosure_report(announcement_id: int):
    """The after-action disclosure report, styled for print: counts only, for every role."""
    with engine().connect() as conn:
        row = lifecycle.get(conn, announcement_id)
        data = disclosure.report(conn, row) if row.sent else None
        area_names = queries.area_names(conn)
    return render_template("console/disclosure.html", a=row, data=data, area_names=area_names,
                           office=current_app.config["OFFICE_NAME"],
                           shares=disclosure.SHARES), 200 if data else 409


@bp.route("/announcements/<int:announcement_id>/disclosure.csv")
@login_required
def disclosure_csv(announcement_id: int):
    with engine().connect() as conn:
        row = lifecycle.get(conn, announcement_id)
        if not row.sent:
            return Response(_("This notice has not been sent: there is nothing to report yet."),
                            status=409, mimetype="text/plain")
        data = disclosure.report(conn, row)
        names = queries.area_names(conn)
    names.update(segment_words())
    names["*"] = _("All")
    text = disclosure.report_csv(
        data,
        [_("Town"), _("Age"), _("Impairment"), _("Language"), _("Targeted"), _("Reached"),
         _("First by SMS"), _("First by voice call"), _("First by WeChat"),
         _("First in person"), _("Confirmed"),
         _("Reached, not confirmed"), _("Not reached"), _("Seconds until half reached"),
         _("Seconds until nine in ten reached")],
        [_("Village"), _("Targeted"), _("Reached"), _("Loudspeakers"), _("Played"),
         _("Failed")], names)
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=disclosure-{announcement_id}.csv"})


def segment_words() -> dict[str, str]:
    """Age band, impairment and language keys of a segment in the reader's words."""
    return {"unknown": _("unknown"), "none": _("none"), "visual": _("visual"),
            "hearing": _("hearing"), "visual+hearing": _("visual and hearing"),
            **{tag: language_name(tag) for tag in LANGUAGE_NAMES}}


@bp.route("/announcements/<int:announcement_id>/approve", methods=("GET", "POST"))
@login_required
def approve(announcement_id: int):
    """GET, or a POST without ``confirmed=1``: the confirm step, naming in words the notice, its
    areas, severity and how many residents each channel reaches. POST with it: approve and
    release (so no form, script or stray request approves in one click)."""
    if request.form.get("confirmed") != "1":
        with engine().connect() as conn:
            row = lifecycle.get(conn, announcement_id)
            audience = preview.preview(conn, row)
            area_names = queries.area_names(conn)
        return render_template("console/approve.html", a=row, audience=audience,
                               area_names=area_names, places=_places(row, area_names),
                               rendered=_rendered_channels(row))
    try:
        with engine().begin() as conn:
            outcome = lifecycle.approve(conn, announcement_id, g.user)
    except lifecycle.ActionRefused as refused:
        flash(_refusal(refused), "error")
    else:
        _queue_plan(outcome)
        flash(_("Approved: announcement %(id)d is going out.", id=announcement_id), "success")
    return redirect(url_for("announcements.detail", announcement_id=announcement_id))


@bp.post("/announcements/<int:announcement_id>/reject")
@login_required
def reject(announcement_id: int):
    try:
        with engine().begin() as conn:
            lifecycle.reject(conn, announcement_id, g.user, request.form.get("reason", ""))
    except lifecycle.ActionRefused as refused:
        flash(_refusal(refused), "error")
    except ValidationError:
        flash(_("Say why the announcement is rejected."), "error")
    else:
        flash(_("Announcement %(id)d was rejected.", id=announcement_id), "success")
    return redirect(url_for("announcements.detail", announcement_id=announcement_id))


@bp.post("/announcements/<int:announcement_id>/cancel")
@login_required
def cancel(announcement_id: int):
    """Withdraw the announcement; everyone already reached gets the fixed withdrawal notice.

    A POST without ``confirmed=1`` only shows the confirm step (what will happen, in words);
    with it, it acts. A correction typed with it becomes an update that waits for a second
    person.
    """
    correction = request.form.get("correction", "")
    if request.form.get("confirmed") != "1":
        return _cancel_page(announcement_id, correction)
    try:
        with engine().begin() as conn:
            outcome = lifecycle.cancel(conn, announcement_id, g.user, correction=correction,
                                       sender=current_app.config["CAP_SENDER"],
                                       time_zone=current_app.config["OFFICE_TIMEZONE"])
    except lifecycle.ActionRefused as refused:
        flash(_refusal(refused), "error")
    except ValidationError as error:
        flash(_("Nothing was cancelled: %(reason)s", reason=validation_error(error)), "error")
    else:
        _queue_plan(outcome)
        flash(_("Announcement %(id)d is cancelled.", id=announcement_id), "success")
        if outcome.update_id:
            flash(_("Your correction is announcement %(id)d; it goes out once a second person "
                    "approves it.", id=outcome.update_id), "info")
        if outcome.to_plan:
            return redirect(url_for("announcements.detail", announcement_id=outcome.to_plan[0]))
    return redirect(url_for("announcements.detail", announcement_id=announcement_id))


def _cancel_page(announcement_id: int, correction: str):
    """The cancel's confirm step: the notice, its areas and severity, who is told it is withdrawn."""
    with engine().connect() as conn:
        row = lifecycle.get(conn, announcement_id)
        if row.state not in lifecycle.OPEN_STATES + lifecycle.LIVE_STATES or \
                row.msg_type == "cancel" and row.state not in lifecycle.OPEN_STATES:
            flash(_("Not possible now: the announcement is no longer in that state."), "error")
            return redirect(url_for("announcements.detail", announcement_id=announcement_id))
        status = reports.status(conn, row)
        area_names = queries.area_names(conn)
    return render_template("console/cancel.html", a=row, status=status,
                           places=_places(row, area_names), correction=correction,
                           sent=row.state in lifecycle.LIVE_STATES,
                           withdrawal_text=withdrawal_notice(row.language, row.headline,
                                                             row.sent or row.created_at,
                                                             providers.render_context()))


def _places(row, area_names: dict) -> list[str]:
    """The announcement's areas by name, as a confirm step says them."""
    return [area_names.get(code, code) for code in json.loads(row.areas)]


def _queue_plan(outcome: lifecycle.Outcome) -> None:
    if not lifecycle.follow_up(outcome):
        flash(_("The queue is unreachable; sending starts when the reconciler runs."), "warning")


def _may_approve(row) -> bool:
    """Whether to offer this user the approve button (the service checks again)."""
    if row.state != "awaiting_approval" or g.user.role not in APPROVERS:
        return False
    return not (row.status == "actual" and row.author_id == g.user.id)


def _refusal(refused: lifecycle.ActionRefused) -> str:
    if refused.status == 403 and "two-person" in refused.message:
        return _("Two-person rule: someone other than the author must approve a real alert.")
    if refused.status == 403:
        return _("Your role does not allow this.")
    if refused.status == 422:
        return _("A drill never replaces a real alert, nor the reverse: the statuses differ.")
    return _("Not possible now: the announcement is no longer in that state.")


# --- the compose form -------------------------------------------------------------------

def _initial_form(update_of: int | None) -> dict:
    form = {"severity": "moderate", "status": "actual", "language": "zh", "msg_type": "alert",
            "areas": [], "channels": list(CHANNELS), "translations": []}
    if update_of is None:
        return form
    with engine().connect() as conn:
        original = lifecycle.get(conn, update_of)
        # An update says the same in every language the original did: its texts to edit.
        form["translations"] = [{name: getattr(text, name) for name in TRANSLATION_FIELDS}
                                for text in lifecycle.translations(conn, original.id)]
    return {**form, "headline": original.headline, "body": original.body,
            "instruction": original.instruction, "severity": original.severity,
            "status": original.status, "language": original.language, "msg_type": "update",
            "references": original.identifier, "areas": json.loads(original.areas),
            "channels": json.loads(original.channels)}


def _submitted_form() -> dict:
    form = {name: request.form.get(name, "") for name in FORM_FIELDS}
    form["areas"] = request.form.getlist("areas")
    form["channels"] = request.form.getlist("channels")
    form["translations"] = _submitted_translations()
    return form


def _submitted_translations() -> list[dict]:
    """The form's texts in further languages (``translation_<field>``, one value per text, in
    order), without the blocks left empty."""
    columns = [request.form.getlist(f"translation_{name}") for name in TRANSLATION_FIELDS]
    texts = [dict(zip(TRANSLATION_FIELDS, values)) for values in zip(*columns)]
    return [text for text in texts if any(value.strip() for value in text.values())]


def _as_input(form: dict) -> dict:
    """The form as the API's JSON would say it, for ``parse_announcement``."""
    data = {name: form[name] for name in FORM_FIELDS if form[name]}
    if LOCAL_MINUTE.match(form["expires"]):
        local = datetime.fromisoformat(form["expires"]).replace(tzinfo=office_time_zone())
        data["expires"] = local.isoformat()
    data["areas"] = form["areas"]
    data["channels"] = form["channels"]
    if form["translations"]:
        data["translations"] = [{name: value for name, value in text.items() if value}
                                for text in form["translations"]]
    return data


def _compose_page(form: dict, error: ValidationError | None = None, *,
                  restore_draft: bool = False):
    """The form; ``restore_draft`` (a fresh page, not the officer's own form coming back) lets
    the page put back a draft kept in the browser, e.g. after the session timed out."""
    with engine().connect() as conn:
        tree = queries.area_tree(conn)
    return render_template("console/compose.html", form=form, error=error, tree=tree,
                           limits=LIMITS, severities=SEVERITIES, statuses=COMPOSE_STATUSES,
                           channels=CHANNELS, languages=LANGUAGES, restore_draft=restore_draft)


def compose_again(message: str):
    """The compose page with what was just sent, when the form itself was refused (its CSRF
    token no longer valid): the officer's text comes back, nothing is lost."""
    flash(message, "warning")
    return _compose_page(_submitted_form()), 400


def _preview_page(conn, form: dict, data):
    draft = _draft_view(form, data)
    draft.areas = json.dumps(data.areas)
    draft.channels = json.dumps(data.channels)
    summary = preview.preview(conn, draft, languages=[
        data.language, *(text.language for text in data.translations)])
    # Channels with no provider write to the outbox: their time estimate is the outbox's, not
    # what a real provider would take, and the page says so.
    outbox_channels = [channel for channel in summary["deliveries"]
                       if providers.provider_for(current_app.config, channel) == "outbox"]
    return render_template("console/preview.html", form=form, data=data, summary=summary,
                           rendered=_rendered_channels(draft), outbox_channels=outbox_channels,
                           area_names=queries.area_names(conn))


def _draft_view(form: dict, data=None) -> SimpleNamespace:
    """An announcement-like object for the renderers and the preview, before it is stored.

    While the clerk types, fields may be incomplete or wrong; they are clamped to
    something renderable rather than refused (refusing is the submit's job).
    """
    def choice(name, allowed, default):
        return form.get(name) if form.get(name) in allowed else default

    now = datetime.now(timezone.utc)
    return SimpleNamespace(
        id=0, headline=form.get("headline", "")[:LIMITS["headline"]],
        body=form.get("body", "")[:LIMITS["body"]],
        instruction=form.get("instruction", "")[:LIMITS["instruction"]],
        status=choice("status", STATUSES, "actual"),
        msg_type=choice("msg_type", ("alert", "update", "cancel"), "alert"),
        severity=choice("severity", SEVERITIES, "moderate"),
        language=choice("language", LANGUAGES, "zh"), sent=None, created_at=now)


def _rendered_channels(announcement) -> dict:
    context = providers.render_context()
    return {channel: render(announcement, channel, announcement.language, context)
            for channel in json.loads(announcement.channels)}


def _rendered_json(rendered) -> dict:
    return {"text": rendered.text, "data": {k: v for k, v in rendered.data.items()
                                            if isinstance(v, (str, int, bool, dict, type(None)))}}

