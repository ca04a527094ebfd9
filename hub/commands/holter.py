"""`devsync holter ...`: the long-term ECG (Holter) analysis service.

    devsync holter serve [--host H] [--port P] [--data DIR] [--settings FILE] [--workers N] [--database-url URL]
    devsync holter key create NAME [--rate-limit N] [--data DIR] [--database-url URL]   (prints the key once)
"""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    holter = sub.add_parser("holter", help="Holter ECG analysis API: serve, API keys")
    cmds = holter.add_subparsers(dest="holter_command", required=True, metavar="HOLTER_COMMAND")

    p = cmds.add_parser("serve", help="run the API and its worker pool")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8600, help="listen port (default 8600)")
    _common(p)
    p.add_argument("--workers", type=int, help="analysis jobs at once (settings: workers)")
    p.add_argument("--health-port", type=int, default=9466, help="/metrics, /healthz, /readyz port (0 = off)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)

    key = cmds.add_parser("key", help="API keys")
    key_cmds = key.add_subparsers(dest="key_command", required=True, metavar="KEY_COMMAND")
    p = key_cmds.add_parser("create", help="create an API key and print it (shown once; only a hash is stored)")
    p.add_argument("name")
    p.add_argument("--rate-limit", type=int, help="requests per minute for this key (default: settings default_rate_limit_per_minute)")
    _common(p)
    p.set_defaults(func=cmd_key_create)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="data folder (uploads, results, SQLite database); settings: data_dir")
    p.add_argument("--settings", help="YAML/JSON file of Holter settings (see docs/holter-api.md)")
    p.add_argument("--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://127.0.0.1/holter (default SQLite in --data)")


def _settings(args):
    from hub.holter.settings import load_settings

    return load_settings(args.settings, data_dir=args.data, database_url=args.database_url, workers=getattr(args, "workers", None))


def cmd_serve(args) -> int:
    import uvicorn

    from hub.holter.api import create_app

    settings = _settings(args)
    app = create_app(settings)
    from hub.health import database_check, start_health_server
    from hub.holter.store import database_url

    start_health_server(args.health_port, [database_check(database_url(settings.data_dir, settings.database_url))],
                        required=False)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.log_level == "debug")
    return 0


def cmd_key_create(args) -> int:
    from hub.holter.auth import create_key
    from hub.holter.store import database_url, open_engine

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_engine(database_url(settings.data_dir, settings.database_url))
    token, webhook_secret = create_key(engine, args.name, now=time.time(), rate_limit_per_minute=args.rate_limit)
    print(f"api_key: {token}")
    print(f"webhook_secret: {webhook_secret}")
    print("Store the API key now: it is not shown again (only its salted hash is kept).")
    return 0
