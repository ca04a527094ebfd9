"""Edge gateway: persistent SQLite store-and-forward buffer between device connectors and the hub
(docs/edge-gateway.md)."""
