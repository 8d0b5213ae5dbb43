"""Alembic environment: run by ``bridge db upgrade`` with a connection passed in attributes."""

from alembic import context

from bridge.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - the bridge always passes one
    raise RuntimeError("run migrations through `bridge db upgrade`")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
