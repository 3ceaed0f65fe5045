"""The operators' commands (a contract used by scripts)."""
from __future__ import annotations

import csv
import os
import stat
from types import SimpleNamespace

import pytest
import waitress
from sqlalchemy import func, select

from channels.base import Outgoing
from channels.outbox import OutboxChannel
from gateway import cli, create_app
from gateway.delivery import health
from audiences.demo import demo_grid_assignments
from gateway.store.schema import areas, devices, grid_workers, residents, users

pytestmark = pytest.mark.integration


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_commands_on_an_empty_database_say_to_migrate(tmp_path, redis_url):
    app = create_app({"INSTANCE_PATH": str(tmp_path), "REDIS_URL": redis_url,
                      "DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"})
    result = run(app, "users", "create", "li", "--role", "author", "--password", "secret-pass")
    assert result.exit_code == 1 and "flask --app wsgi db upgrade" in result.output
    assert run(app, "db", "upgrade").output.strip() == "database schema is up to date"
    assert run(app, "db", "upgrade").exit_code == 0  # again: nothing to do


def test_users_tokens_areas_residents_and_speakers(app, tmp_path):
    created = run(app, "users", "create", "li", "--role", "approver", "--password", "secret-pass")
    assert created.exit_code == 0, created.output
    token = run(app, "tokens", "create", "li")
    assert token.exit_code == 0 and token.output.startswith("tb_") and token.output.count("\n") == 1
    assert run(app, "users", "create", "li", "--role", "author", "--password", "secret-pass").exit_code == 1
    assert "is not one of" in run(app, "users", "create", "x", "--role", "boss").output
    area_file = tmp_path / "areas.csv"
    area_file.write_text("\ufeffcode,name\n450702,钦南区\n450702100,沙埠镇\n450702100201,沙埠村\n",
                         encoding="utf-8")
    assert run(app, "areas", "import", str(area_file)).output.strip() == "imported 3 areas and grids"
    roster_file = tmp_path / "roster.csv"
    roster_file.write_text(
        "name,phone,wechat_openid,area_code,birth_year,visually_impaired,hearing_impaired,"
        "has_smartphone,language,opt_out,test_audience\n"
        "周杰,13900000001,,450702100201,1980,0,0,1,zh,,0\n"
        "吴昊,13900000002,,450702100299,1980,0,0,1,zh,,0\n", encoding="utf-8")
    refused = run(app, "residents", "import", str(roster_file))
    assert refused.exit_code == 1 and "line 3, column area_code" in refused.output
    assert run(app, "speakers", "add", "spk-1", "450702100201").exit_code == 0
    assert "not in the area registry" in run(app, "speakers", "add", "spk-2", "450702100299").output
    key = run(app, "speakers", "key")
    assert key.output.startswith("-----BEGIN PUBLIC KEY-----")
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(residents)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(areas)).scalar() == 3
        assert conn.execute(select(devices.c.device_id)).scalars().all() == ["spk-1"]
        assert conn.execute(select(users.c.role).where(users.c.name == "li")).scalar() == "approver"


def test_areas_import_names_the_line_of_a_cell_over_the_csv_field_limit(app, tmp_path):
    area_file = tmp_path / "areas.csv"
    area_file.write_text(f'code,name\n450702,"{"x" * (csv.field_size_limit() + 1)}"\n', encoding="utf-8")
    result = run(app, "areas", "import", str(area_file))
    assert result.exit_code == 1  # a message, not a traceback
    assert "line 2" in result.output and "longer than" in result.output
    with app.app_context(), app.extensions["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(areas)).scalar() == 0


def test_residents_import_reads_a_gbk_roster_updates_and_retires_with_replace_area(app, tmp_path):
    with app.extensions["engine"].begin() as conn:
        conn.execute(areas.insert(), [{"code": "450702", "name": "钦南区"},
                                      {"code": "450702100201", "name": "沙埠村"}])
    first = tmp_path / "名单.csv"
    first.write_bytes("姓名,手机号,村代码,备注\n周杰,13900000001,450702100201,x\n吴昊,13900000002,450702100201,\n"
                      .encode("gbk"))
    result = run(app, "residents", "import", str(first))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["note: column '备注' is not a roster column and was ignored",
                                          "read as GB18030: 2 residents added, 0 updated, 0 retired"]
    second = tmp_path / "second.csv"
    second.write_text("name,phone,area_code\n周杰,13900000001,450702100201\n", encoding="utf-8")
    result = run(app, "residents", "import", str(second), "--replace-area", "450702100201")
    assert result.output.strip() == "read as UTF-8: 0 residents added, 1 updated, 1 retired"
    with app.extensions["engine"].connect() as conn:
        rows = conn.execute(select(residents.c.name, residents.c.retired_at).order_by(residents.c.id)).all()
    assert [(name, retired is not None) for name, retired in rows] == [("周杰", False), ("吴昊", True)]
    refused = run(app, "residents", "import", str(second), "--replace-area", "450799")
    assert refused.exit_code == 1 and "450799" in refused.output and "not in the area registry" in refused.output


def test_demo_seeds_the_county_once(app):
    first = run(app, "demo")
    assert first.exit_code == 0 and "demo county loaded" in first.output
    assert "login approver / tongbao-approver" in first.output
    again = run(app, "demo")
    assert "already loaded" in again.output and "tongbao-approver" not in again.output
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(residents)).scalar() == 3000
        assert conn.execute(select(func.count()).select_from(devices)).scalar() > 10
        worked = conn.execute(select(grid_workers.c.grid_code).join(
            users, users.c.id == grid_workers.c.user_id).where(users.c.name == "grid")).scalars()
        assert sorted(worked) == sorted(code for code, _ in demo_grid_assignments())
        assert conn.execute(select(func.count()).select_from(residents)
                            .where(residents.c.grid.is_(None))).scalar() == 0


def test_areas_import_takes_grids_and_assign_gives_them_a_worker(app, tmp_path):
    village, grid = "450702100201", "450702100201001"
    listed = tmp_path / "areas.csv"
    listed.write_text(f"code,name\n450702,钦南区\n450702100,沙埠镇\n{village},沙埠村\n{grid},一组\n",
                      encoding="utf-8")
    assert "imported 4 areas and grids" in run(app, "areas", "import", str(listed)).output
    orphan = tmp_path / "orphan.csv"
    orphan.write_text("code,name\n450799100201001,无村之组\n", encoding="utf-8")
    refused = run(app, "areas", "import", str(orphan))
    assert refused.exit_code != 0 and "which is not in the area registry" in refused.output
    run(app, "users", "create", "wang", "--role", "grid_worker", "--password", "secret-pass")
    run(app, "users", "create", "li", "--role", "author", "--password", "secret-pass")
    assert "wang works grid" in run(app, "areas", "assign", grid, "wang").output
    not_a_worker = run(app, "areas", "assign", grid, "li")
    assert not_a_worker.exit_code != 0 and "li is a author, not a grid_worker" in not_a_worker.output
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(grid_workers.c.grid_code)).scalars().all() == [grid]
    assert "no longer works" in run(app, "areas", "assign", grid, "wang", "--remove").output
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(grid_workers.c.grid_code)).scalars().all() == []


def test_reconcile_reports_what_it_did(app):
    result = run(app, "reconcile")
    assert result.exit_code == 0
    assert result.output.strip() == ("batches requeued: 0, sends reclaimed: 0, plans requeued: 0, "
                                     "imports requeued: 0, nudges queued: 0")


@pytest.fixture
def serve_without_servers(app, monkeypatch):
    """``serve`` up to where it would listen: no workers, broker or web server are started."""
    class Process:
        def terminate(self): pass
        def wait(self, timeout=None): pass

    class Listening:
        def stop(self): pass

    app.config["MQTT_URL"] = "mqtt://127.0.0.1:1"  # no embedded broker
    monkeypatch.setattr(cli.subprocess, "Popen", lambda *args, **kwargs: Process())
    monkeypatch.setattr(cli.loudspeakers, "listen", lambda app: Listening())
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)
    monkeypatch.setattr(waitress, "serve", lambda *args, **kwargs: None)
    return lambda *args: run(app, "serve", *args)


def user_names(app) -> list[str]:
    with app.extensions["engine"].connect() as conn:
        return sorted(conn.execute(select(users.c.name)).scalars())


def test_serve_makes_no_users_with_published_passwords(app, serve_without_servers):
    """A production start: no demo county, no demo users; it says how to make the first user."""
    result = serve_without_servers()
    assert result.exit_code == 0, result.output
    assert user_names(app) == [] and "tongbao-" not in result.output
    assert "flask --app wsgi users create NAME --role admin" in result.output
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(residents)).scalar() == 0
    run(app, "users", "create", "li", "--role", "admin", "--password", "secret-pass")
    assert "users create" not in serve_without_servers().output


def test_serve_demo_loads_the_demo_and_prints_its_logins_once(app, serve_without_servers):
    first = serve_without_servers("--demo")
    assert first.exit_code == 0, first.output
    assert "login admin / tongbao-admin" in first.output
    assert "login grid / tongbao-grid  (grid_worker)" in first.output
    assert user_names(app) == ["admin", "approver", "author", "grid"]
    again = serve_without_servers("--demo")
    assert again.exit_code == 0 and "tongbao-" not in again.output
    assert "users create" not in again.output


def test_serve_makes_the_signing_key_it_serves_so_it_is_ready_at_once(app, serve_without_servers):
    path = app.config["SIGNING_KEY_PATH"]
    assert not os.path.exists(path)
    assert serve_without_servers().exit_code == 0
    assert mode(path) == 0o600
    assert health.check_signing_key(app).ok


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_database_and_outbox_are_the_owners_alone(tmp_path, redis_url):
    old_umask = os.umask(0o022)  # a usual umask: files 0644 unless made otherwise
    try:
        instance = tmp_path / "instance"
        app = create_app({"INSTANCE_PATH": str(instance), "REDIS_URL": redis_url})
        assert app.config["DATABASE_URL"] == f"sqlite:///{instance}/tongbao.db"
        assert run(app, "db", "upgrade").exit_code == 0
        assert mode(instance) == 0o700
        assert mode(instance / "tongbao.db") == 0o600 and mode(instance / "secret_key") == 0o600
        outbox = OutboxChannel({"path": str(tmp_path / "new" / "outbox.jsonl")})
        outbox.send(Outgoing(delivery_id=1, announcement_id=1, address="+8613800000001",
                             rendered=SimpleNamespace(language="zh", text="x", data={})))
        assert mode(tmp_path / "new") == 0o700 and mode(tmp_path / "new" / "outbox.jsonl") == 0o600
        app.extensions["engine"].dispose()
    finally:
        os.umask(old_umask)
