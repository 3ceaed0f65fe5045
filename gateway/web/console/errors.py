"""Error pages shared by the console's blueprints."""
from __future__ import annotations

from flask import render_template
from flask_babel import gettext as _


def no_such_announcement(refused):
    """Pages under an announcement's number whose announcement does not exist."""
    return render_template("console/error.html", message=_("There is no such announcement.")), 404


def forbidden(error):
    """A page the user's role may not open (``role_required``): say so, in their language."""
    return render_template("console/error.html",
                           message=_("Your role does not allow this page.")), 403
