"""The HTTP session a channel talks to its provider over, with the environment read once.

By default (``trust_env``) requests reads the process environment on every request: the proxy
variables, twice, for the request's host, the CA-bundle variables and ``~/.netrc``. A worker's
environment holds the gateway's whole configuration, and that reading cost more CPU than the
rest of a send's own work (measured here: 135 µs a request with 35 variables, 300 µs with
80). A channel's provider origin is fixed, so the same answers are worked out once, when the
channel is built: the proxy for that origin (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``,
``NO_PROXY``) and ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``; ``.netrc`` is not used (every
provider is given its credentials explicitly). A destination channel posts to a registry's
URLs: it works out each origin's proxy the first time it sees it (``OriginProxies``).
Changing them takes a restart, like the rest of the configuration.
"""
from __future__ import annotations

import os
from urllib.parse import urlsplit

import requests
from requests.utils import get_environ_proxies


def provider_session(origin: str, session: requests.Session | None = None) -> requests.Session:
    """``session`` (a new one if none) set up for requests to ``origin`` from now on."""
    session = many_origins_session(session)
    session.proxies.update(get_environ_proxies(origin))
    return session


def many_origins_session(session: requests.Session | None = None) -> requests.Session:
    """``session`` (a new one if none) set up for requests to origins known only when sending
    (a registry's destinations): give each request its origin's ``OriginProxies``."""
    session = session or requests.Session()
    session.trust_env = False
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


class OriginProxies:
    """The environment's proxy for a URL's origin, read the first time that origin is seen."""

    def __init__(self):
        self._by_origin: dict[str, dict[str, str]] = {}

    def __call__(self, url: str) -> dict[str, str]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._by_origin:
            self._by_origin[origin] = get_environ_proxies(origin)
        return self._by_origin[origin]
