"""`speakers add` and `speakers rekey`: credentials printed once, and they work end to end
on the embedded broker of `serve` (its gateway password kept in the instance folder)."""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import insert, select

from channels.loudspeaker import protocol
from gateway.cli import embedded_broker
from gateway.delivery import loudspeakers
from gateway.store import roster
from gateway.store.schema import areas, devices
from tests.channels.test_loudspeaker_mosquitto import Probe
from tests.conftest import run_jobs
from tests.gateway.loudspeakers.conftest import EAST, VILLAGES, statuses, wait_for
from tests.gateway.test_fanout import publish

pytestmark = pytest.mark.integration


def printed(output: str) -> dict[str, str]:
    return dict(re.findall(r"^  (mqtt user|mqtt password|ack key): +(\S+)$", output, re.M))


@pytest.fixture
def broker(app, county):
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": code, "name": name} for code, name in VILLAGES])
    broker, gateway_url = embedded_broker(app)
    broker.start()
    app.config["MQTT_URL"] = gateway_url  # before any sender exists
    yield broker
    broker.stop()


def test_speakers_add_prints_credentials_that_work_end_to_end(app, api, broker, tmp_path):
    device_id = f"spk-{uuid.uuid4().hex[:12]}"
    result = app.test_cli_runner().invoke(args=["speakers", "add", device_id, EAST])
    assert result.exit_code == 0, result.output
    credentials = printed(result.output)
    assert credentials["mqtt user"] == device_id
    with app.extensions["engine"].connect() as conn:
        row = conn.execute(select(devices).where(devices.c.device_id == device_id)).one()
    # Only a digest and the public half are kept.
    assert credentials["mqtt password"] not in (row.mqtt_password_hash, row.ack_public_key)
    assert row.ack_public_key == protocol.SigningKey.from_text(credentials["ack key"]).public_base64()
    password_file = os.path.join(app.instance_path, "mqtt-gateway-password")
    assert stat.S_IMODE(os.stat(password_file).st_mode) == 0o600
    restarted = embedded_broker(app)[1]  # the same password after a restart (another port)
    assert restarted.split("@")[0] == app.config["MQTT_URL"].split("@")[0]

    wrong = Probe(broker.url_for(device_id, "not-it"), "wrong")
    try:
        assert wrong.connect().is_failure
    finally:
        wrong.close()
    listening = loudspeakers.listen(app, client_id=f"tongbao-acks-{uuid.uuid4().hex[:12]}")
    (tmp_path / "ack.key").write_text(credentials["ack key"] + "\n")
    (tmp_path / "gateway.pub").write_text(
        protocol.SigningKey.load_or_create(app.config["SIGNING_KEY_PATH"]).public_pem())
    controller = subprocess.Popen(
        [sys.executable, "-m", "devices.controller", "--device-id", device_id,
         "--public-key", str(tmp_path / "gateway.pub"), "--ack-key", str(tmp_path / "ack.key"),
         "--state-dir", str(tmp_path / "state"), "--sink-dir", str(tmp_path / "sink")],
        cwd=os.getcwd(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.getcwd(),
             "TONGBAO_MQTT_URL": broker.url_for(device_id, credentials["mqtt password"])})
    try:
        announcement_id = publish(api, areas=[EAST], channels=["loudspeaker"])
        run_jobs(app)
        wait_for(lambda: statuses(app, announcement_id) == {device_id: "confirmed"},
                 "the device to play the notice and say so")
    finally:
        controller.kill()
        controller.wait()
        listening.stop(end_session=True)


def test_a_device_registered_before_credentials_gets_them_by_rekey(app, broker):
    device_id = f"spk-{uuid.uuid4().hex[:12]}"
    with app.extensions["engine"].begin() as conn:
        roster.add_device(conn, device_id, EAST, actor="test")  # as before migration 0007
        assert roster.ack_public_keys(conn, [device_id]) == {}
    result = app.test_cli_runner().invoke(args=["speakers", "rekey", device_id])
    assert result.exit_code == 0, result.output
    first = printed(result.output)
    again = printed(app.test_cli_runner().invoke(args=["speakers", "rekey", device_id]).output)
    assert again["mqtt password"] != first["mqtt password"]
    for password, refused in ((first["mqtt password"], True), (again["mqtt password"], False)):
        probe = Probe(broker.url_for(device_id, password), device_id)
        try:
            assert probe.connect().is_failure is refused
        finally:
            probe.close()
    unknown = app.test_cli_runner().invoke(args=["speakers", "rekey", "no-such-device"])
    assert unknown.exit_code != 0 and "no device 'no-such-device'" in unknown.output


@pytest.mark.parametrize("device_id", ["speaker one", "喇叭1", "a/b", "x+", "#", "d" * 65, ""])
def test_a_device_id_the_protocol_refuses_is_refused_at_registration(app, county, device_id):
    """It would get credentials but could use no topic (its id is its topic level and login)."""
    with app.extensions["engine"].begin() as conn:
        with pytest.raises(roster.DeviceError, match="invalid device id"):
            roster.add_device(conn, device_id, EAST, actor="test")
        assert conn.execute(select(devices.c.id).where(devices.c.device_id == device_id)).first() is None
