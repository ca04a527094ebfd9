"""Alembic environment for the ledger and audit store.

Run through `devsync db upgrade` or `hub.store.migrate.upgrade_store(engine)`, which pass the
connection in `config.attributes["connection"]`; a plain `alembic -x url=...` run works too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from hub.store.models import metadata

config = context.config


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
