"""``flask --app wsgi destinations add|list|remove``: broadcasters and webhooks (docs/interop.md)."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from gateway.store import destinations
from gateway.store.db import engine

destinations_cli = AppGroup("destinations", help="Broadcasters and signed webhooks notices are "
                                                 "POSTed to (TV, radio, platform, webhook).")


@destinations_cli.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(destinations.KINDS), required=True)
@click.option("--area", "area_code", required=True, help="Area code it serves (6, 9 or 12 digits).")
@click.option("--url", required=True, help="Where notices are POSTed (https://…).")
@click.option("--secret", default=None,
              help="Shared signing secret (16-128 characters); made when not given.")
@click.option("--test", "test_destination", is_flag=True, help="Also gets drills (exercise, test).")
def destinations_add(name, kind, area_code, url, secret, test_destination):
    """Register a destination; prints its secret and pull-feed token, shown only now."""
    try:
        with engine().begin() as conn:
            added = destinations.add(conn, name=name, kind=kind, area_code=area_code, url=url,
                                     secret=secret, test_destination=test_destination)
    except destinations.DestinationError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"destination {name} ({kind}) registered, number {added.id}")
    click.echo("Give the receiver these; they are shown only now:")
    click.echo(f"  signing secret: {added.secret}")
    click.echo(f"  feed token:     {added.feed_token}  (GET /feeds/destinations/{added.id}"
               "/alerts.xml with Authorization: Bearer <token>)")


@destinations_cli.command("list")
def destinations_list():
    """Every destination: number, name, kind, area, URL, test flag (never its secret)."""
    with engine().connect() as conn:
        rows = destinations.listed(conn)
    for row in rows:
        click.echo(f"{row.id}\t{row.name}\t{row.kind}\t{row.area_code}\t{row.url}"
                   f"{chr(9) + 'test' if row.test_destination else ''}")
    if not rows:
        click.echo("no destinations registered")


@destinations_cli.command("remove")
@click.argument("name")
def destinations_remove(name):
    """Remove a destination: it gets nothing more, and its pending deliveries fail."""
    try:
        with engine().begin() as conn:
            destinations.remove(conn, name)
    except destinations.DestinationError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"destination {name} removed")
