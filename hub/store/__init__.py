"""Ledger and audit store (SQLAlchemy 2; SQLite embedded, PostgreSQL in production)."""

from hub.store.records import DELIVERED, DLQ, DUPLICATE, HELD, PARKED, SENT, DeadLetter, Outcome, SinkCounts
from hub.store.store import Store, open_store

__all__ = ["DELIVERED", "DLQ", "DUPLICATE", "HELD", "PARKED", "SENT", "DeadLetter", "Outcome", "SinkCounts",
           "Store", "open_store"]
