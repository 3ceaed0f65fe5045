"""The operators' commands (a contract used by scripts)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gateway import create_app
from gateway.store.schema import areas, devices, residents, users

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
    assert run(app, "areas", "import", str(area_file)).output.strip() == "imported 3 areas"
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


def test_demo_seeds_the_county_once(app):
    first = run(app, "demo")
    assert first.exit_code == 0 and "demo county loaded" in first.output
    assert "login approver / tongbao-approver" in first.output
    assert "already loaded" in run(app, "demo").output
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(residents)).scalar() == 3000
        assert conn.execute(select(func.count()).select_from(devices)).scalar() > 10


def test_reconcile_reports_what_it_did(app):
    result = run(app, "reconcile")
    assert result.exit_code == 0
    assert result.output.strip() == "batches requeued: 0, sends reclaimed: 0, plans requeued: 0"
