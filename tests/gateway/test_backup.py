"""Backup and restore (issue 20, item 6): a backup of a gateway that sent a notice, restored into a
FRESH database (a new SQLite file; a new PostgreSQL database made here and dropped after), has
the same residents, ledger and counts, and the same signing key; a restore never writes over a
database with data in it, nor over another key."""
from __future__ import annotations

import json
import os
import stat

import pytest
from sqlalchemy import func, select

from channels.loudspeaker.protocol import SigningKey
from gateway import create_app
from gateway.store.schema import audit_log, deliveries, delivery_counts, reached, residents
from tests.conftest import new_postgres_database
from tests.gateway.delivery.conftest import by_address, hand_over, planned, reach

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_database_url(database_url, tmp_path):
    """A new, empty database of the same kind as the app's."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / 'tongbao.db'}"
        return
    with new_postgres_database("tongbao_restore") as url:
        yield url


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def snapshot(app) -> dict:
    with app.extensions["engine"].connect() as conn:
        return {
            "residents": conn.execute(select(residents.c.id, residents.c.name, residents.c.phone)
                                      .order_by(residents.c.id)).all(),
            "deliveries": conn.execute(select(deliveries.c.id, deliveries.c.channel,
                                              deliveries.c.address, deliveries.c.status)
                                       .order_by(deliveries.c.id)).all(),
            "counts": conn.execute(select(delivery_counts).order_by(
                delivery_counts.c.announcement_id, delivery_counts.c.channel,
                delivery_counts.c.status)).all(),
            "reached": conn.execute(select(reached.c.recipient_id, reached.c.channel)
                                    .order_by(reached.c.recipient_id)).all(),
        }


def test_a_backup_restored_into_a_fresh_database_keeps_the_ledger_residents_and_key(
        app, county, fresh_database_url, tmp_path, redis_url):
    announcement_id = planned(app)
    rows = list(by_address(app, announcement_id).values())
    hand_over(app, announcement_id, [row.id for row in rows])
    reach(app, [row.id for row in rows if row.channel == "sms"])
    key = SigningKey.load_or_create(app.config["SIGNING_KEY_PATH"]).public_pem()
    before = snapshot(app)
    assert before["deliveries"] and before["reached"] and len(before["residents"]) >= 8

    made = run(app, "backup", str(tmp_path / "backups"))
    assert made.exit_code == 0, made.output
    folder = made.output.strip().splitlines()[-1]
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode) == 0o600
               for name in os.listdir(folder))
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    assert set(manifest["files"]) == {"loudspeaker-signing-key.pem",
                                      "tongbao.db" if "sqlite" in app.config["DATABASE_URL"]
                                      else "tongbao.dump"}
    with app.extensions["engine"].connect() as conn:  # an export of everyone: audited
        assert conn.execute(select(func.count()).select_from(audit_log)
                            .where(audit_log.c.action == "backup")).scalar_one() == 1

    elsewhere = tmp_path / "new-host"
    restored_app = create_app({"DATABASE_URL": fresh_database_url, "REDIS_URL": redis_url,
                               "INSTANCE_PATH": str(elsewhere), "TESTING": True})
    try:
        done = run(restored_app, "restore", folder)
        assert done.exit_code == 0, done.output
        assert "signing key: restored" in done.output
        assert snapshot(restored_app) == before
        assert SigningKey.load_or_create(restored_app.config["SIGNING_KEY_PATH"]) \
            .public_pem() == key
        assert stat.S_IMODE(os.stat(restored_app.config["SIGNING_KEY_PATH"]).st_mode) == 0o600

        again = run(restored_app, "restore", folder)  # now it has data: refused, unchanged
        assert again.exit_code == 1 and "is not empty" in again.output
        assert snapshot(restored_app) == before
    finally:
        restored_app.extensions["engine"].dispose()


def test_a_changed_backup_or_another_key_is_refused_before_anything_is_written(
        app, county, fresh_database_url, tmp_path, redis_url):
    SigningKey.load_or_create(app.config["SIGNING_KEY_PATH"])
    folder = run(app, "backup", str(tmp_path / "backups")).output.strip().splitlines()[-1]
    elsewhere = tmp_path / "new-host"
    restored_app = create_app({"DATABASE_URL": fresh_database_url, "REDIS_URL": redis_url,
                               "INSTANCE_PATH": str(elsewhere), "TESTING": True})
    try:
        SigningKey.load_or_create(restored_app.config["SIGNING_KEY_PATH"])  # another key
        refused = run(restored_app, "restore", folder)
        assert refused.exit_code == 1 and "holds another signing key" in refused.output
        os.remove(restored_app.config["SIGNING_KEY_PATH"])
        dump = next(name for name in os.listdir(folder) if name.startswith("tongbao."))
        with open(os.path.join(folder, dump), "ab") as handle:
            handle.write(b"tampered")
        refused = run(restored_app, "restore", folder)
        assert refused.exit_code == 1 and "SHA-256 differs" in refused.output
        with restored_app.extensions["engine"].connect() as conn:
            assert conn.dialect.has_table(conn, "residents") is False
        assert not os.path.exists(restored_app.config["SIGNING_KEY_PATH"])
    finally:
        restored_app.extensions["engine"].dispose()
