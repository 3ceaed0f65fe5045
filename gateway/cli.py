"""Operators' commands, run as ``flask --app wsgi <command>``. Their names are a contract."""
from __future__ import annotations

import hmac
import os
import signal
import subprocess
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, insert, select

from audiences import demo as demo_county
from audiences.areas import AreaError, CsvErrors
from channels.loudspeaker.protocol import SigningKey
from channels.loudspeaker.protocol.transport import BrokerAddress
from devices.broker import GATEWAY_USER, EmbeddedBroker
from gateway import backup as backups
from gateway import instance_secret, logs
from gateway.store import audit
from gateway.store import accounts, db, grids, roster, speakers
from gateway import doctor as checkup
from gateway.delivery import loudspeakers, queues, reconciler, retention, workers
from gateway.store.schema import areas, devices, grids as grid_table, residents, users
from gateway.store.db import engine
from gateway.cli_destinations import destinations_cli


def _schema_ready() -> None:
    try:
        db.check_schema(engine())
    except db.SchemaMissing as error:
        raise click.ClickException(str(error)) from None


db_cli = AppGroup("db", help="The database schema.")
users_cli = AppGroup("users", help="People who use the console and the API.")
tokens_cli = AppGroup("tokens", help="API tokens.")
areas_cli = AppGroup("areas", help="The administrative area registry.")
residents_cli = AppGroup("residents", help="The resident roster.")
speakers_cli = AppGroup("speakers", help="Village loudspeaker devices.")
robots_cli = AppGroup("robots", help="WeCom group robots of villages and grid teams.")


@db_cli.command("upgrade")
def db_upgrade():
    """Create the schema, or migrate it to the current version."""
    db.upgrade(engine())
    click.echo("database schema is up to date")


@users_cli.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(accounts.ROLES), required=True)
@click.option("--password", help="Asked for when not given.")
def users_create(name, role, password):
    """Add a user with a role: author, approver, admin or grid_worker."""
    _schema_ready()
    if password is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        with engine().begin() as conn:
            accounts.create_user(conn, name, role, password)
    except accounts.AuthError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"user {name} ({role}) created")


@users_cli.command("phone")
@click.argument("name")
@click.argument("phone", default="")
def users_phone(name, phone):
    """Give grid worker NAME the mobile PHONE their nudges go to (none given: no nudges)."""
    _schema_ready()
    try:
        with engine().begin() as conn:
            number = grids.set_phone(conn, name, phone, "cli")
    except grids.GridError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{name}'s nudges go to {number}" if number else f"{name} is not nudged by SMS")


@tokens_cli.command("create")
@click.argument("name")
def tokens_create(name):
    """Make an API token for user NAME; prints the token alone."""
    _schema_ready()
    try:
        with engine().begin() as conn:
            token = accounts.create_token(conn, name)
    except accounts.AuthError as error:
        raise click.ClickException(str(error)) from None
    click.echo(token)


@areas_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def areas_import(file):
    """Add areas, and grids (15-digit codes: a village's code and a 3-digit suffix), from a CSV
    file with the header code,name."""
    _schema_ready()
    _run_import(lambda conn: roster.import_areas(conn, file, "cli"), "areas and grids")


@areas_cli.command("assign")
@click.argument("grid_code")
@click.argument("user")
@click.option("--remove", is_flag=True, help="Take the grid worker off the grid instead.")
def areas_assign(grid_code, user, remove):
    """Make USER (a grid_worker) work the grid GRID_CODE, or with --remove no longer."""
    _schema_ready()
    change = grids.unassign if remove else grids.assign
    try:
        with engine().begin() as conn:
            change(conn, grid_code, user, "cli")
    except (AreaError, grids.GridError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{user} {'no longer works' if remove else 'works'} grid {grid_code}")


@areas_cli.command("languages")
@click.argument("area_code")
@click.argument("languages", nargs=-1)
@click.option("--clear", is_flag=True, help="Unset them: its loudspeakers speak as the area above.")
def areas_languages(area_code, languages, clear):
    """The languages AREA_CODE's loudspeakers speak, in the order they play them (e.g. cmn yue);
    without LANGUAGES, show them."""
    _set_speaker_languages(lambda conn, chosen: speakers.set_area_languages(
        conn, area_code, chosen, "cli"), lambda conn: speakers.area_languages(
        conn, [area_code.strip()]).get(area_code.strip(), ()), f"area {area_code}", languages, clear)


@residents_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--replace-area", metavar="AREA_CODE",
              help="Retire the residents of this area who are not in the file.")
@click.option("--sheet", help="The workbook's sheet to read (default: the first).")
def residents_import(file, replace_area, sheet):
    """Import a roster CSV or .xlsx (columns in the README): updates residents matched by phone
    or openid, adds the others; all or nothing."""
    _schema_ready()
    try:
        with engine().begin() as conn:
            result = roster.import_residents(conn, file, "cli", replace_area=replace_area, sheet=sheet)
    except (CsvErrors, AreaError) as error:
        raise click.ClickException(str(error)) from None
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(f"read as {result.encoding}: {result.added} residents added, {result.updated} updated, "
               f"{result.retired} retired")


def _run_import(action, what: str) -> None:
    try:
        with engine().begin() as conn:
            count = action(conn)
    except (CsvErrors, AreaError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"imported {count} {what}")


@speakers_cli.command("add")
@click.argument("device_id")
@click.argument("area_code")
@click.option("--test-device", is_flag=True, help="Receives drills (test and exercise).")
def speakers_add(device_id, area_code, test_device):
    """Register a loudspeaker device in a village; prints its credentials, once."""
    _schema_ready()
    try:
        with engine().begin() as conn:
            roster.add_device(conn, device_id, area_code, test_device=test_device)
            credentials = roster.issue_device_credentials(conn, device_id.strip())
    except (roster.DeviceError, AreaError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"loudspeaker {device_id} registered in {area_code}")
    _echo_credentials(credentials)


@speakers_cli.command("rekey")
@click.argument("device_id")
def speakers_rekey(device_id):
    """New broker password and ack key for a device (the old ones stop working); prints them."""
    _schema_ready()
    try:
        with engine().begin() as conn:
            credentials = roster.issue_device_credentials(conn, device_id)
    except roster.DeviceError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"loudspeaker {device_id} has new credentials")
    _echo_credentials(credentials)


@speakers_cli.command("languages")
@click.argument("device_id")
@click.argument("languages", nargs=-1)
@click.option("--clear", is_flag=True, help="Unset them: the device speaks its village's.")
def speakers_languages(device_id, languages, clear):
    """The languages one device speaks, in order, instead of its village's; without LANGUAGES,
    show what it speaks."""
    def current(conn):
        row = conn.execute(select(devices.c.id).where(devices.c.device_id == device_id.strip())).first()
        return speakers.device_languages(conn, [row.id]).get(row.id, ()) if row else ()
    _set_speaker_languages(lambda conn, chosen: speakers.set_device_languages(
        conn, device_id, chosen, "cli"), current, f"loudspeaker {device_id}", languages, clear)


def _set_speaker_languages(change, current, what: str, languages, clear: bool) -> None:
    _schema_ready()
    try:
        chosen = speakers.parse_languages(languages)
        with engine().begin() as conn:
            if chosen or clear:
                change(conn, chosen)
            shown = current(conn)
    except speakers.SpeakerLanguageError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{what} speaks {' then '.join(shown)}" if shown else
               f"{what} has no languages set: it plays the announcement's own language")


def _echo_credentials(credentials: roster.DeviceCredentials) -> None:
    click.echo("Configure its controller with these; they are shown only now "
               "(only a hash and the ack key's public half are kept):")
    click.echo(f"  mqtt user:     {credentials.device_id}")
    click.echo(f"  mqtt password: {credentials.mqtt_password}")
    click.echo(f"  ack key:       {credentials.ack_key}")
    click.echo("The ack key goes, alone, into the file given to the controller as --ack-key.")


@robots_cli.command("add")
@click.argument("name")
@click.argument("area_code")
@click.argument("robot_key")
def robots_add(name, area_code, robot_key):
    """Register a group robot; announcements with WeChat to its area post there."""
    _schema_ready()
    try:
        with engine().begin() as conn:
            roster.add_robot(conn, name, area_code, robot_key)
    except (roster.DeviceError, AreaError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"group robot {name} registered in {area_code}")


@speakers_cli.command("listen")
def speakers_listen():
    """Record loudspeaker acks and presence, and re-send unacknowledged commands, until stopped."""
    _schema_ready()
    if not current_app.config["MQTT_URL"]:
        raise click.ClickException("MQTT_URL is not set: there is no broker to listen to")
    loudspeakers.listen_until_signalled(current_app._get_current_object())


@speakers_cli.command("key")
def speakers_key():
    """Print the public key loudspeaker controllers verify commands with (made if absent)."""
    click.echo(SigningKey.load_or_create(current_app.config["SIGNING_KEY_PATH"]).public_pem(),
               nl=False)


@click.command("demo")
@with_appcontext
def demo():
    """Seed the demo county (a few districts of Qinzhou) and demo users."""
    _schema_ready()
    created = seed_demo()
    if created is None:
        click.echo("the demo county is already loaded")
    else:
        click.echo("demo county loaded")
        _echo_logins(created)


def seed_demo() -> list[tuple[str, str, str]] | None:
    """Load the demo county into a database with no residents, with its users (their passwords
    are published in the README). Returns the users it created, or None when it loaded nothing."""
    created = []
    with engine().begin() as conn:
        if conn.execute(select(func.count()).select_from(residents)).scalar_one():
            return None
        existing = roster.known_areas(conn)
        new_areas = [{"code": c, "name": n} for c, n in demo_county.demo_areas() if c not in existing]
        if new_areas:
            conn.execute(insert(areas), new_areas)
        for device_id, area_code, is_test in demo_county.demo_devices():
            roster.add_device(conn, device_id, area_code, test_device=is_test, actor="demo")
        conn.execute(insert(grid_table), [{"code": code, "name": name}
                                          for code, name in demo_county.demo_grids()])
        roster.insert_residents(conn, demo_county.demo_residents())
        for name, role, password in demo_county.demo_users():
            if accounts.find_user(conn, name) is None:
                accounts.create_user(conn, name, role, password)
                created.append((name, role, password))
        for grid_code, user in demo_county.demo_grid_assignments():
            grids.assign(conn, grid_code, user, "demo")
    return created


def _echo_logins(created: list[tuple[str, str, str]]) -> None:
    for name, role, password in created:
        click.echo(f"  login {name} / {password}  ({role})")


@click.command("worker")
@with_appcontext
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--queues", "names", default=",".join(queues.QUEUE_NAMES), show_default=True,
              help="Comma-separated queues to serve.")
def worker(burst, names):
    """Run an rq worker (with the scheduler) on the channel queues."""
    _schema_ready()
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    unknown = set(wanted) - set(queues.QUEUE_NAMES)
    if unknown:
        raise click.ClickException(f"no queue named {sorted(unknown)[0]}; "
                                   f"the queues are {', '.join(queues.QUEUE_NAMES)}")
    workers.run(current_app._get_current_object(), wanted, burst=burst)


@click.command("reconcile")
@with_appcontext
def reconcile():
    """Re-queue deliveries and roster imports stranded by a lost job or a Redis restart, and
    queue the grid workers' nudges when some may be due."""
    _schema_ready()
    outcome = reconciler.reconcile()
    click.echo(", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in outcome.items()))


@click.command("backup")
@click.argument("folder", type=click.Path(file_okay=False))
@with_appcontext
def backup(folder):
    """Back up the database and the signing key into a new folder under FOLDER (owner-only)."""
    _schema_ready()
    try:
        made = backups.backup(current_app._get_current_object(), folder)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    with engine().begin() as conn:
        audit.record(conn, "cli", "backup", os.path.basename(made), {"folder": made})
    click.echo(made)


@click.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@with_appcontext
def restore(folder):
    """Restore a backup FOLDER into the configured database, which must be empty."""
    try:
        done = backups.restore(current_app._get_current_object(), folder)
    except backups.BackupError as error:
        raise click.ClickException(str(error)) from None
    with engine().begin() as conn:
        audit.record(conn, "cli", "restore", os.path.basename(os.path.normpath(folder)),
                     {"folder": folder, "schema_from": done.schema_from})
    click.echo(f"{done.database} database restored (schema {done.schema_from}, now current); "
               f"signing key: {done.signing_key}")


@click.command("retention")
@with_appcontext
def retention_pass():
    """Now, by hand: delete the delivery details of notices finished more than RETENTION_DAYS
    ago, keeping their counts (the workers do this once an hour)."""
    _schema_ready()
    days = current_app.config["RETENTION_DAYS"]
    if not days:
        click.echo("RETENTION_DAYS is 0: delivery details are kept; nothing deleted")
        return
    done = retention.run()
    click.echo(f"finished more than {days} days ago: {done['announcements']} notices, "
               f"{done['deliveries']} deliveries and {done['replies']} SMS replies "
               f"anonymised or deleted; {done['outbox']} outbox records older than that deleted")


@click.command("serve")
@click.option("--demo", "with_demo", is_flag=True,
              help="The quickstart (make run): load the demo county and its users, whose "
                   "passwords are published, into a database with no residents.")
@with_appcontext
def serve(with_demo):
    """Migrate, then run workers and the web server together (--demo: with the demo county)."""
    import waitress

    app = current_app._get_current_object()
    # The quickstart is read by a person at a terminal: plain lines, unless LOG_FORMAT says.
    log_format = os.environ.get("LOG_FORMAT") or "text"
    logs.configure(log_format, app.config["LOG_LEVEL"])
    db.upgrade(engine())
    created = seed_demo() if with_demo else None
    with engine().connect() as conn:
        has_users = conn.execute(select(func.count()).select_from(users)).scalar_one() > 0
    broker = None
    if not app.config["MQTT_URL"]:
        broker, app.config["MQTT_URL"] = embedded_broker(app)
        broker.start()
    # One host signs: make its key now, so /readyz is ready and controllers can fetch it at once.
    SigningKey.load_or_create(app.config["SIGNING_KEY_PATH"])
    listening = loudspeakers.listen(app)
    environment = {**os.environ, "REDIS_URL": queues.redis_url(app),
                   "MQTT_URL": app.config["MQTT_URL"], "LOG_FORMAT": log_format}
    # In sessions of their own: Ctrl+C reaches serve alone, which stops each worker once
    # (rq ignores a second stop signal that comes within a second of the first).
    workers = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker",
                                 "--queues", name], env=environment, start_new_session=True)
               for name in queues.QUEUE_NAMES]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    url = f"http://{app.config['HOST']}:{app.config['PORT']}/"
    click.echo(f"\nTongbao is running: console {url}  API {url}api/v1/")
    click.echo(f"Loudspeaker broker {BrokerAddress.parse(app.config['MQTT_URL']).safe_url()}; "
               f"controllers verify with "
               f"{url}loudspeaker/public-key.pem")
    if created:
        click.echo("Demo county loaded; its logins (published: for trying out only):")
        _echo_logins(created)
    elif not has_users:
        click.echo("There are no users yet. Create the first one with\n"
                   "  flask --app wsgi users create NAME --role admin\n"
                   "(and approvers and authors the same way, --role approver|author).")
    click.echo("Press Ctrl+C to stop.\n")
    try:
        waitress.serve(app, host=app.config["HOST"], port=app.config["PORT"], threads=8)
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(timeout=15)
        listening.stop()
        if broker is not None:
            broker.stop()


def embedded_broker(app: Flask) -> tuple[EmbeddedBroker, str]:
    """The quickstart's MQTT broker, not started, and the gateway's URL on it.

    The gateway logs in with a password made once into ``instance/mqtt-gateway-password``;
    a device with the broker password last issued to it (only its hash is in the database).
    """
    password = instance_secret(app.instance_path, "mqtt-gateway-password")
    database = app.extensions["engine"]

    def check_password(user: str, given: str) -> bool:
        if user == GATEWAY_USER:
            return hmac.compare_digest(given.encode("utf-8"), password.encode("utf-8"))
        with database.connect() as conn:
            return roster.device_password_ok(conn, user, given)

    broker = EmbeddedBroker(check_password=check_password)
    return broker, broker.url_for(GATEWAY_USER, password)


@click.command("doctor")
@with_appcontext
def doctor():
    """Check the configuration, credentials, speech voices, signing key, files and connections,
    and say what to fix; exits 1 when something is wrong."""
    findings = checkup.examine(current_app._get_current_object())
    for finding in findings:
        mark = "FIX " if not finding.ok else "warn" if finding.fix else "ok  "
        click.echo(f"{mark}  {finding.name:<12} {finding.detail}")
        if finding.fix:
            click.echo(f"      {'':<12} -> {finding.fix}")
    wrong = sum(not finding.ok for finding in findings)
    if wrong:
        raise click.ClickException(f"{wrong} thing(s) to fix before this gateway can be relied on")
    click.echo("nothing to fix")


def register(app: Flask) -> None:
    for group in (db_cli, users_cli, tokens_cli, areas_cli, residents_cli, speakers_cli,
                  robots_cli, destinations_cli):
        app.cli.add_command(group)
    for command in (demo, worker, reconcile, retention_pass, backup, restore, serve, doctor):
        app.cli.add_command(command)
