"""Ledger and audit store (SQLAlchemy 2; SQLite embedded, PostgreSQL in production)."""

from hub.store.records import DELIVERED, DLQ, DUPLICATE, HELD, PARKED, SENT, DeadLetter, Outcome, SinkCounts
from hub.store.store import DB_UNAVAILABLE, Store, open_store

__all__ = ["DB_UNAVAILABLE", "DELIVERED", "DLQ", "DUPLICATE", "HELD", "PARKED", "SENT", "DeadLetter", "Outcome", "SinkCounts",
           "Store", "open_store"]
