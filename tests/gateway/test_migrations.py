"""The migrations (gateway/store/migrations/) build the very schema the code queries
(gateway/store/schema.py): a column, index, constraint or type in one and not the other fails
here, on SQLite and PostgreSQL, instead of in whichever query first meets it."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table

from gateway.store import db
from gateway.store.schema import metadata

pytestmark = pytest.mark.integration


def differences(engine, tables: MetaData) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, tables)


def test_the_migrated_database_is_the_schema_the_code_queries(database_url):
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine)
        assert differences(engine, metadata) == []
        # and the comparison does see a difference: a table no migration made
        probe = MetaData()
        for table in metadata.sorted_tables:
            table.to_metadata(probe)
        Table("not_migrated", probe, Column("id", Integer, primary_key=True))
        assert [difference[0] for difference in differences(engine, probe)] == ["add_table"]
    finally:
        engine.dispose()
