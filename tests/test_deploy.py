"""The production layout of deploy/ and docs/deploy.md: gunicorn really serves ``wsgi:app``,
and every command the systemd units and the compose file start is one the gateway has."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest
import yaml

from gateway import config
from tests.drills.harness import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def _get(url: str, **headers) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


@pytest.mark.integration
def test_gunicorn_serves_wsgi_app_with_the_shipped_settings(tmp_path, redis_url):
    metrics_folder = tmp_path / "metrics"  # made (and emptied) by gunicorn.conf.py's on_starting
    environment = {**os.environ, "TONGBAO_INSTANCE": str(tmp_path / "instance"),
                   "DATABASE_URL": f"sqlite:///{tmp_path / 'tongbao.db'}", "REDIS_URL": redis_url,
                   "METRICS_TOKEN": "scrape", "PROMETHEUS_MULTIPROC_DIR": str(metrics_folder)}
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT,
                   env=environment, check=True, capture_output=True, timeout=60)
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w+")
    # From the repository's root, as the units start it: gunicorn.conf.py is read from there.
    server = subprocess.Popen([str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}",
                               "wsgi:app"], cwd=ROOT, env=environment, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        status, page = wait_until(lambda: (answer := _get(f"http://127.0.0.1:{port}/login"))[0]
                                  and answer, 30, "gunicorn to answer")
        assert status == 200
        assert 'name="password"' in page
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, '{"status":"ok"}\n')
        status, exposition = _get(f"http://127.0.0.1:{port}/metrics", Authorization="Bearer scrape")
        assert status == 200
        assert 'tongbao_source_up{source="database"} 1.0' in exposition
        with ThreadPoolExecutor(6) as pool:  # at once, so several processes answer
            answers = list(pool.map(lambda _: _get(f"http://127.0.0.1:{port}/healthz")[0],
                                    range(12)))
        assert answers == [200] * 12
        status, exposition = _get(f"http://127.0.0.1:{port}/metrics", Authorization="Bearer scrape")
        # Summed over the processes from PROMETHEUS_MULTIPROC_DIR: 1 + 12 answers.
        assert 'tongbao_http_requests_total{method="GET",route="/healthz",status="200"} 13.0' \
            in exposition
        assert metrics_folder.is_dir()
        log.seek(0)
        started = log.read()
        assert "Using worker: gthread" in started
        assert len(re.findall(r"Booting worker with pid", started)) == 3
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def flask_command_exists(arguments: list[str]) -> bool:
    """Whether ``flask --app wsgi ARGUMENTS…`` names a command of the gateway's CLI."""
    from wsgi import app

    assert arguments[:2] == ["--app", "wsgi"], arguments
    group: click.Command = app.cli
    context = click.Context(group)
    for word in arguments[2:]:
        if word.startswith("-"):
            break
        if not isinstance(group, click.Group):
            break
        command = group.get_command(context, word)
        if command is None:
            return False
        group = command
    return group is not app.cli


def check_command(argv: list[str]) -> None:
    program = Path(argv[0]).name
    if program == "flask":
        assert flask_command_exists(argv[1:]), f"no such command: {shlex.join(argv)}"
    elif program == "gunicorn":
        assert "wsgi:app" in argv, argv
    else:
        pytest.fail(f"unexpected program {argv[0]}")


def unit(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_flask_command_check_tells_real_commands_from_others():
    assert flask_command_exists(["--app", "wsgi", "speakers", "listen"])
    assert flask_command_exists(["--app", "wsgi", "worker", "--queues", "sms"])
    assert not flask_command_exists(["--app", "wsgi", "speakers", "scream"])
    assert not flask_command_exists(["--app", "wsgi", "scheduler"])


@pytest.mark.parametrize("name", ["tongbao-web.service", "tongbao-worker@.service",
                                  "tongbao-listener.service"])
def test_each_systemd_unit_starts_a_command_of_the_gateway(name):
    values = unit(name)
    [start] = values["ExecStart"]
    argv = shlex.split(start)
    assert argv[0].startswith("/opt/tongbao/.venv/bin/")
    check_command(argv)
    assert values["WorkingDirectory"] == ["/opt/tongbao"]  # where gunicorn.conf.py and wsgi.py are
    assert values["EnvironmentFile"] == ["/etc/tongbao/tongbao.env"]
    assert values["Restart"] == ["always"]


def test_the_units_cover_web_workers_and_listener():
    programs = {" ".join(shlex.split(unit(path.name)["ExecStart"][0])[1:])
                for path in (DEPLOY / "systemd").glob("*.service")}
    assert programs == {"wsgi:app", "--app wsgi worker", "--app wsgi speakers listen"}


def test_the_compose_file_runs_the_documented_services():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    for name, service in services.items():
        if "command" in service and name not in ("postgres", "redis", "mosquitto"):
            check_command(service["command"])
            assert service["network_mode"] == "host"
    commands = sorted(" ".join(s["command"]) for s in services.values() if s.get("build"))
    assert commands == ["flask --app wsgi db upgrade", "flask --app wsgi speakers listen",
                        "flask --app wsgi worker", "flask --app wsgi worker", "gunicorn wsgi:app"]
    redis = services["redis"]["command"]
    assert redis[redis.index("--appendonly") + 1] == "yes"
    # Mosquitto runs the documented configuration and ACL from docs/mosquitto/, not a copy.
    mounts = dict(volume.rsplit(":", 2)[:2] if volume.endswith(":ro") else volume.split(":", 1)
                  for volume in services["mosquitto"]["volumes"])
    assert mounts["../docs/mosquitto/mosquitto.conf"] == services["mosquitto"]["command"][-1]
    assert mounts["../docs/mosquitto/acl"] == "/etc/mosquitto/tongbao/acl"
    assert "acl_file /etc/mosquitto/tongbao/acl" in (ROOT / "docs/mosquitto/mosquitto.conf").read_text()
    for source in mounts:
        if source.startswith(".."):
            assert (DEPLOY / source).is_file(), source
    gateway = services["gateway"]
    assert (DEPLOY / gateway["build"]["context"] / gateway["build"]["dockerfile"]).is_file()


def test_the_example_environment_names_only_real_settings():
    names = [line.lstrip("#").split("=")[0]
             for line in (DEPLOY / "tongbao.env.example").read_text().splitlines()
             if re.match(r"#?[A-Z_]+=", line)]
    assert {"DATABASE_URL", "REDIS_URL", "MQTT_URL", "PUBLIC_BASE_URL", "SECRET_KEY",
            "TRUSTED_PROXIES"} <= set(names)
    assert set(names) - set(config.SETTINGS) == set()


def test_nginx_proxies_to_where_gunicorn_listens():
    settings: dict = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), settings)
    proxied = re.findall(r"proxy_pass http://([\d.:]+);", (DEPLOY / "nginx/tongbao.conf").read_text())
    assert proxied and set(proxied) == {settings["bind"]}
    assert settings["wsgi_app"] == "wsgi:app"


def test_the_alert_rules_use_series_the_gateway_exposes(make_app, tmp_path):
    from gateway.delivery.metrics import PipelineCollector
    from gateway.web.metrics import DURATION, REQUESTS

    app = make_app(f"sqlite:///{tmp_path / 'tongbao.db'}")
    suffixes = {"counter": ("_total",), "summary": ("_count", "_sum"), "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum")}
    families = [*PipelineCollector(app).collect(), *REQUESTS.collect(), *DURATION.collect()]
    exposed = {family.name + suffix for family in families
               for suffix in suffixes[family.type]}
    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in expressions for name in re.findall(r"\btongbao_[a-z_]+", expr)}
    assert used and used <= exposed, used - exposed
    assert {"tongbao_workers", "tongbao_queue_oldest_job_age_seconds", "tongbao_devices",
            "tongbao_provider_errors_total"} <= used  # workers down, queue stuck, devices, errors


@pytest.mark.skipif(shutil.which("nginx") is None, reason="no nginx binary here (apt-get install nginx)")
def test_the_nginx_example_is_valid_nginx(tmp_path):
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=tongbao.example.gov.cn", "-keyout", str(key),
                    "-out", str(certificate)], check=True, capture_output=True)
    site = (DEPLOY / "nginx/tongbao.conf").read_text() \
        .replace("/etc/letsencrypt/live/tongbao.example.gov.cn/fullchain.pem", str(certificate)) \
        .replace("/etc/letsencrypt/live/tongbao.example.gov.cn/privkey.pem", str(key))
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n")
    checked = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_every_command_docs_deploy_runs_exists():
    text = (ROOT / "docs/deploy.md").read_text()
    commands = [line.split("#")[0].split(">")[0].split()[1:] for line in text.splitlines()
                if line.startswith("run ")]
    commands += [match.split() for match in re.findall(r"flask --app wsgi ([a-z ]+)", text)]
    assert len(commands) >= 10
    for words in commands:
        assert flask_command_exists(["--app", "wsgi", *words]), words


@pytest.mark.integration
@pytest.mark.slow
def test_a_first_drill_on_the_production_layout(tmp_path):
    """docs/deploy.md on this machine: PostgreSQL, a Redis and a Mosquitto of the test's own,
    the commands of step 3, then gunicorn, a worker and the listener as separate processes;
    /readyz ready, doctor content, and an exercise reaching the test audience only."""
    from tests.drills.harness import Mosquitto, PostgresDatabase, RedisServer, kill_group

    redis_server = RedisServer(str(tmp_path / "redis")).start()
    broker = Mosquitto(str(tmp_path / "mqtt")).start()
    database = PostgresDatabase()
    port = free_port()
    environment = {**os.environ, "TONGBAO_INSTANCE": str(tmp_path / "instance"),
                   "DATABASE_URL": database.url, "REDIS_URL": redis_server.url,
                   "MQTT_URL": broker.url, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                   "METRICS_TOKEN": "scrape", "STALE_SENDING_SECONDS": "4",
                   "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    processes = []

    def run(*words: str, stdin: str | None = None) -> str:
        done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", *words], cwd=ROOT,
                              env=environment, capture_output=True, text=True, timeout=120,
                              input=stdin)
        assert done.returncode == 0, (words, done.stdout, done.stderr)
        return done.stdout

    def start(*argv: str) -> None:
        log = open(tmp_path / f"{Path(argv[0]).name}-{len(processes)}.log", "w")
        processes.append(subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))

    try:
        run("db", "upgrade")
        for name, role in (("admin", "admin"), ("approver1", "approver"), ("author1", "author")):
            run("users", "create", name, "--role", role, "--password", f"{name}-long-password")
        (tmp_path / "areas.csv").write_text("code,name\n450700,钦州市\n450702,钦南区\n"
                                            "450702100,沙埠镇\n450702100201,沙埠村\n")
        run("areas", "import", str(tmp_path / "areas.csv"))
        (tmp_path / "roster.csv").write_text(
            "name,phone,area_code,test_audience\n王工,13800000031,450702100201,1\n"
            "李工,13800000032,450702100201,1\n村民,13800000033,450702100201,0\n")
        run("residents", "import", str(tmp_path / "roster.csv"))
        assert "BEGIN PUBLIC KEY" in run("speakers", "key")
        tokens = {name: run("tokens", "create", name).strip()
                  for name in ("admin", "approver1", "author1")}

        start(str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "wsgi:app")
        start(str(BIN / "flask"), "--app", "wsgi", "worker")
        start(str(BIN / "flask"), "--app", "wsgi", "speakers", "listen")
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _get(f"{base}/readyz")[0] == 200, 60, "the gateway ready")
        assert run("doctor").rstrip().endswith("nothing to fix")

        def call(method: str, path: str, user: str, body: dict | None = None) -> dict:
            request = urllib.request.Request(
                base + path, method=method, data=json.dumps(body).encode() if body else None,
                headers={"Authorization": f"Bearer {tokens[user]}",
                         "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        created = call("POST", "/api/v1/announcements", "author1", {
            "headline": "防汛演练", "body": "今天下午三点进行防汛演练。", "severity": "minor",
            "status": "exercise", "areas": ["450702100201"]})
        call("POST", f"/api/v1/announcements/{created['id']}/approve", "approver1")

        def sent() -> dict | None:
            counts = call("GET", f"/api/v1/announcements/{created['id']}", "admin")["deliveries"]
            done = {channel: {s: n for s, n in by_status.items() if n}
                    for channel, by_status in counts.items() if any(by_status.values())}
            return done if done and not any(
                status in ("planned", "queued", "sending") for by in done.values() for status in by) \
                else None

        # Phones and no smartphone: an SMS and a call each (the policy), to the outbox.
        assert wait_until(sent, 60, "the drill delivered") == {"sms": {"delivered": 2},
                                                                "voice": {"delivered": 2}}
        outbox = call("GET", f"/api/v1/outbox?announcement={created['id']}", "admin")
        records = outbox["messages"]
        assert {record["address"] for record in records} == {"+8613800000031", "+8613800000032"}
        status, exposition = _get(f"{base}/metrics", Authorization="Bearer scrape")
        assert 'tongbao_deliveries{channel="sms",status="delivered"} 2.0' in exposition
        assert 'tongbao_provider_send_seconds_count{channel="sms"} 2.0' in exposition
    finally:
        for process in processes:
            kill_group(process, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
        broker.stop()
        redis_server.stop()
        database.drop()
