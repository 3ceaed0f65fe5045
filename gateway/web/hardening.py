"""What every request goes through around its view, so that no input yields a 500.

- **Body limits.** Every request body is limited to ``MAX_REQUEST_BYTES`` (JSON, the
  console's forms, webhooks); a view marked ``@body_limit("MAX_ROSTER_BYTES")`` (a roster
  upload) takes more. Werkzeug refuses a longer body before reading it: 413, with the limit.
- **Bounded JSON.** A JSON body nested deeper than ``MAX_JSON_DEPTH`` or holding a lone UTF-16
  surrogate (``"x\\ud800y"``, which no database or provider can store or send) is refused
  with 400 and what is wrong, before any view sees it.
- **No NUL in a URL or a form.** No one types one, and PostgreSQL cannot store or compare a
  text holding it: a query argument or form field with a NUL character is 400. (JSON texts
  are cleaned where they are validated, see ``messages.announcement.clean_text``.)
- **Ids the databases hold.** ``<int:…>`` in every route matches only up to 2**63 - 1, the
  largest integer SQLite and PostgreSQL (bigint) store: a larger id is 404, not an overflow.
- **Answers to errors.** An HTTP error is JSON under ``/api/`` and the console's error page
  (``app.extensions["error_page"]``, installed by the console) for the console's pages;
  anything unexpected under ``/api/`` is a JSON 500 with an error id that is logged with the
  traceback, never an HTML page.
"""
from __future__ import annotations

import re
import uuid
from typing import Any, Callable

from flask import Flask, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

MAX_JSON_DEPTH = 32
LARGEST_ID = 2 ** 63 - 1  # SQLite's INTEGER and PostgreSQL's bigint
LAST_PAGE = 1_000_000     # past this a page's offset overflows a database integer
API_PREFIX = "/api/"
# Paths that are not the console's pages: their errors keep Werkzeug's plain answers.
PLAIN_PREFIXES = ("/webhooks/", "/media/", "/loudspeaker/", "/static/")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def init_app(app: Flask) -> None:
    """Call before any blueprint is registered (the id converter is read when routes are added)."""
    app.url_map.converters["int"] = DatabaseIdConverter
    app.json = BoundedJSONProvider(app)
    app.before_request(_check_request)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def body_limit(setting: str) -> Callable:
    """Mark a view that takes a larger body, by the name of its setting (``MAX_ROSTER_BYTES``)."""
    def mark(view: Callable) -> Callable:
        view.body_limit = setting
        return view
    return mark


def _check_request() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    setting = getattr(view, "body_limit", "MAX_REQUEST_BYTES")
    request.max_content_length = current_app.config[setting]
    fields = [request.args]
    if request.mimetype in FORM_TYPES:
        fields.append(request.form)
    for name, value in (item for multidict in fields for item in multidict.items(multi=True)):
        if "\x00" in (name or "") or "\x00" in value:  # a multipart part may have no name
            raise BadRequest(f"the field {name.replace(chr(0), '')!r} has a NUL character")


class DatabaseIdConverter(IntegerConverter):
    """``<int:…>`` for database ids: a larger number matches no route (404)."""

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", LARGEST_ID)
        super().__init__(map, *args, **kwargs)


class BoundedJSONProvider(DefaultJSONProvider):
    """The app's JSON, which reads request bodies: bounded nesting, no lone surrogates.

    Its refusals are ``BadRequest`` (400 with the reason), not ``ValueError``: Flask's
    ``get_json(silent=True)`` would turn a ``ValueError`` into "no JSON body".
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise _too_deep() from None
        _check(value)
        return value


def _check(value: Any) -> None:
    """Walk the parsed body without recursion: depth, and every key and string."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, (list, dict)):
            if depth >= MAX_JSON_DEPTH:
                raise _too_deep()
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                item = item.values()
            stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    match = LONE_SURROGATE.search(text)
    if match:
        raise BadRequest(f"the JSON has a lone surrogate (\\u{ord(match.group()):04x}) in a text; "
                         "a character outside the Basic Multilingual Plane needs both halves "
                         "of its surrogate pair")


def _too_deep() -> BadRequest:
    return BadRequest(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")


def clamped_page(value: int | None) -> int:
    """A page number for a console list: from 1 to ``LAST_PAGE`` whatever was typed."""
    return min(max(value or 1, 1), LAST_PAGE)


def _http_error(error: HTTPException):
    if request.path.startswith(API_PREFIX):
        return jsonify({"error": _description(error)}), error.code
    page = current_app.extensions.get("error_page")  # the console's, when it is installed
    if page is None or request.path.startswith(PLAIN_PREFIXES) or (error.code or 0) < 400:
        return error
    return page(error)


def _description(error: HTTPException) -> str:
    if isinstance(error, RequestEntityTooLarge):
        return (f"the request body is larger than the limit of {request.max_content_length} "
                "bytes; nothing was stored")
    return error.description or error.name


def _unexpected_error(error: Exception):
    """The API's safety net: a JSON 500 naming an error id, the traceback logged under it."""
    if not request.path.startswith(API_PREFIX):
        raise error
    error_id = uuid.uuid4().hex[:12]
    current_app.logger.exception("unexpected error %s in %s %s", error_id, request.method,
                                 request.path)
    return jsonify({"error": f"an unexpected error happened on the gateway (error id {error_id}); "
                             "nothing more is known here, the operators find it in the log "
                             "under that id", "error_id": error_id}), 500
