"""A stand-in's HTTP plumbing: a WSGI server on 127.0.0.1 (a free port) in a thread, each
request answered by the subclass's ``answer``."""
from __future__ import annotations

import threading

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class LocalServer:
    def __init__(self):
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def answer(self, request: Request) -> Response:
        raise NotImplementedError

    def _app(self, environ, start_response):
        return self.answer(Request(environ))(environ, start_response)
