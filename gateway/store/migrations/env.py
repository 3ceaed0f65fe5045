"""Alembic's entry point: runs migrations on the engine the gateway hands it."""
from alembic import context

from gateway.store.schema import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    context.run_migrations()
