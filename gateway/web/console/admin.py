"""The audit log (who did what, when) and the outbox (what unconfigured channels would send).

The outbox holds every resident's phone and text, so it is for admins only."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from channels import outbox
from gateway.delivery import providers
from gateway.store.accounts import APPROVERS
from gateway.web.console import queries
from gateway.web.console.auth import role_required
from gateway.web.console.errors import forbidden
from gateway.store.db import engine
from gateway.web.hardening import clamped_page

bp = Blueprint("admin", __name__)
bp.register_error_handler(403, forbidden)

PER_PAGE = 100


def _page() -> int:
    return clamped_page(request.args.get("page", type=int))


@bp.route("/audit")
@role_required(*APPROVERS)
def audit_log():
    actor = request.args.get("actor", "").strip()
    action = request.args.get("action", "").strip()
    page = _page()
    with engine().connect() as conn:
        entries, total = queries.audit_entries(conn, actor=actor, action=action, limit=PER_PAGE,
                                               offset=(page - 1) * PER_PAGE)
    return render_template("console/audit.html", entries=entries, total=total, actor=actor,
                           action=action, page=page, per_page=PER_PAGE)


@bp.route("/outbox")
@role_required("admin")
def outbox_view():
    announcement = request.args.get("announcement", type=int)
    channel = request.args.get("channel") or None
    page = _page()
    records, total = outbox.read(providers.outbox_path(current_app), announcement_id=announcement,
                                 channel=channel, offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
    return render_template("console/outbox.html", records=records, total=total,
                           announcement=announcement, channel=channel or "", page=page,
                           per_page=PER_PAGE)
