"""gunicorn's settings for the production web process: ``gunicorn wsgi:app`` (see docs/deploy.md).

gunicorn reads this file from the directory it starts in; a command-line option wins over it
(``--bind 0.0.0.0:8000``, ``--workers 5``). Only the web process runs here: the rq workers and
the loudspeaker ack listener are processes of their own (``flask --app wsgi worker``,
``flask --app wsgi speakers listen``).

Sized for 2 cores. A request spends most of its time waiting on the database or Redis (the
fan-out itself runs in the workers), so 3 processes keep both cores busy and 4 threads each
overlap those waits: 12 requests in flight. The CPU-heavy request is a console login (the
password hash); 3 processes let two logins and the API run side by side. Raise ``workers``
to 2 × cores + 1 on a larger machine; each process holds its own database pool (up to 10
connections on PostgreSQL), so keep workers × 10 below PostgreSQL's ``max_connections``
together with the rq workers.
"""
import os

wsgi_app = "wsgi:app"
bind = "127.0.0.1:8000"  # behind the reverse proxy (deploy/nginx/tongbao.conf)
workers = 3
worker_class = "gthread"
threads = 4
# A roster import of a whole county is one request; nothing else takes more than seconds.
timeout = 120
graceful_timeout = 30
keepalive = 5
# gunicorn's own lines go through the gateway's handler (gateway/logs.py: JSON by default,
# masked); its access log is off: the app logs each request once, with its request id.
errorlog = "-"


def _logging() -> dict:
    from gateway import config

    settings = config.from_env()
    return {
        "root": {"level": settings["LOG_LEVEL"], "handlers": ["tongbao"]},
        "loggers": {"gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
                    "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True}},
        "handlers": {"tongbao": {"()": "gateway.logs.make_handler",
                                 "log_format": settings["LOG_FORMAT"]}},
    }


logconfig_dict = _logging()
# The proxy in front is on this host; its X-Forwarded-* headers are believed by the gateway
# only as far as TRUSTED_PROXIES says.
forwarded_allow_ips = "127.0.0.1"


# /metrics under several processes: with PROMETHEUS_MULTIPROC_DIR set, prometheus_client keeps
# each process's values in files there and sums them at a scrape (gateway/web/metrics.py).
def _metrics_folder() -> str | None:
    from gateway import config

    return config.from_env()["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server):
    """The folder starts empty at each start: values of processes gone before would count."""
    folder = _metrics_folder()
    if folder:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, mode=0o700)


def child_exit(server, worker):
    """A finished process's live gauges leave the sums."""
    folder = _metrics_folder()
    if folder:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, folder)
