"""Error pages shared by the console's blueprints."""
from __future__ import annotations

from flask import render_template, request
from flask_babel import gettext as _


def no_such_announcement(refused):
    """Pages under an announcement's number whose announcement does not exist."""
    return render_template("console/error.html", message=_("There is no such announcement.")), 404


def details_deleted(error):
    """The unreached list of a notice whose delivery details retention deleted."""
    return render_template("console/error.html", message=_(
        "Who this notice did not reach is no longer known: its delivery details were deleted "
        "after the retention period (RETENTION_DAYS). Its counts remain on its page and in its "
        "disclosure report.")), 410


def forbidden(error):
    """A page the user's role may not open (``role_required``): say so, in their language."""
    return render_template("console/error.html",
                           message=_("Your role does not allow this page.")), 403


def bad_area(error):
    """An ``area`` filter that is no administrative area code (``?area=abc``)."""
    return render_template("console/error.html",
                           message=_("“%(area)s” is not an administrative area code.",
                                     area=request.args.get("area", ""))), 400


def http_error_page(error):
    """Any HTTP error on a console or public page (no such page, too large a form, …)."""
    if error.code == 404:
        message = _("There is no such page.")
    elif error.code == 413:
        message = _("What was sent is larger than the gateway accepts; nothing was saved.")
    elif error.code == 405:
        message = _("This page cannot be used that way.")
    else:
        message = _("The request could not be handled. Go back, reload the page and try again.")
    return render_template("console/error.html", message=message), error.code
