"""A stand-in's HTTP plumbing: a WSGI server on 127.0.0.1 (a free port) in a thread, each
request answered by the subclass's ``answer``; and ``KeepAliveServer``, the server of the
stand-ins whose clients keep connections open (Twilio, WeChat)."""
from __future__ import annotations

import contextlib
import io
import socket
import threading
from http.server import BaseHTTPRequestHandler
from socketserver import TCPServer, ThreadingMixIn
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

#: An idle client connection is closed after this long, as providers close theirs.
IDLE_SECONDS = 60


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


class _KeepAliveResponder(ServerHandler):
    """wsgiref's response writer speaking HTTP/1.1: no ``Connection: close`` while the answer
    has a length (a werkzeug ``Response`` always has)."""

    http_version = "1.1"

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        if "Content-Length" not in self.headers:
            self.headers["Connection"] = "close"
            self.request_handler.close_connection = True

    def log_request(self, *args) -> None:
        """Tests read what the stand-in recorded; an access log would only be noise."""


class _KeepAliveHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_SECONDS
    # An answer goes out in one segment, at once, as a provider's server sends it: written in
    # pieces to a kept-alive connection, the client's delayed ACK held each later piece back
    # 40 ms (Nagle's algorithm), which closing the connection used to flush.
    wbufsize = -1
    disable_nagle_algorithm = True

    def handle(self) -> None:
        BaseHTTPRequestHandler.handle(self)  # one request after another until the client closes

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if not self.parse_request():
            return
        if self.headers.get("Transfer-Encoding"):
            self.send_error(411, "a body needs a Content-Length here")
            return
        # The whole body is read before the app runs, whatever the app reads of it: the next
        # request on this connection starts right after it.
        body = io.BytesIO(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        responder = _KeepAliveResponder(body, self.wfile, self.get_stderr(), self.get_environ(),
                                        multithread=True)
        responder.request_handler = self
        responder.run(self.server.get_app())
        self.wfile.flush()

    def log_message(self, *args) -> None:
        """Quiet, like ``_KeepAliveResponder.log_request``."""


class KeepAliveServer(ThreadingMixIn, WSGIServer):
    """A threaded WSGI server that keeps each client's connection open between requests, as
    Twilio and WeChat do (werkzeug's development server closes every one), so a client's
    connection pool is exercised. ``connections`` counts the connections accepted so far;
    ``stop`` drops the open ones too, as a provider going down does."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, app):
        self.connections = 0
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((host, port), _KeepAliveHandler)
        self.set_app(app)

    def server_bind(self) -> None:
        # Not HTTPServer's: its reverse DNS lookup of the host is slow and says nothing here.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]
        self.setup_environ()

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            self.connections += 1
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        self.shutdown()
        with self._open_lock:
            still_open = list(self._open)
        for connection in still_open:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()
