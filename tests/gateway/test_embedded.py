"""With REDIS_URL unset the gateway runs a real Redis server of its own, which a worker finds."""
from __future__ import annotations

import os
import subprocess
import sys

import redis

from gateway import create_app, embedded
from gateway.delivery import queues


def test_the_embedded_server_is_started_found_and_stopped(tmp_path):
    instance = str(tmp_path / "instance")
    app = create_app({"INSTANCE_PATH": instance, "REDIS_URL": None})
    url = queues.redis_url(app)
    assert url.startswith("unix://") and os.path.exists(url[len("unix://"):])
    assert redis.Redis.from_url(url).ping()
    # Another process (a worker) finds the same server through the instance folder.
    found = subprocess.run(
        [sys.executable, "-c", "import sys; from gateway import embedded; "
         "print(embedded.running_url(sys.argv[1]))", instance],
        capture_output=True, text=True, check=True, cwd=os.getcwd()).stdout.strip()
    assert found == url
    # Its address file and log are the owner's alone, whatever the umask.
    for name in (embedded.URL_FILE, "redis.log"):
        assert os.stat(os.path.join(instance, name)).st_mode & 0o077 == 0, name
    assert os.stat(instance).st_mode & 0o077 == 0
    second = create_app({"INSTANCE_PATH": instance, "REDIS_URL": None})
    assert queues.redis_url(second) == url and "embedded_redis" not in second.extensions
    app.extensions["embedded_redis"].stop()
    assert embedded.running_url(instance) is None


def test_a_configured_redis_is_used_as_it_is(tmp_path, redis_url):
    app = create_app({"INSTANCE_PATH": str(tmp_path), "REDIS_URL": redis_url})
    assert queues.redis_url(app) == redis_url
    assert not os.path.exists(tmp_path / embedded.URL_FILE)
