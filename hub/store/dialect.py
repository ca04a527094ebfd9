"""The two dialect-specific statements the store needs: insert-or-ignore and upsert."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite


def _insert_for(dialect_name: str, table: Table):
    module = postgresql if dialect_name == "postgresql" else sqlite
    return module.insert(table)


def insert_ignore(dialect_name: str, table: Table):
    """INSERT ... ON CONFLICT DO NOTHING (idempotent writes of deterministic ids)."""
    return _insert_for(dialect_name, table).on_conflict_do_nothing()


def upsert(dialect_name: str, table: Table, keys: list[str], update: list[str], where=None, values=None):
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET update-columns = excluded (optionally WHERE);
    with `values` (a list of row dicts) one multi-row statement."""
    stmt = _insert_for(dialect_name, table)
    if values is not None:
        stmt = stmt.values(values)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={name: stmt.excluded[name] for name in update}, where=where
    )
