"""`devsync db upgrade|current`: bring the ledger/audit database to the newest migration.

Also holds the options every store command shares: `--rules PATH` (the database URL is
runtime.database_url there) or `--db URL` (wins over the rules), and `--schema` (PostgreSQL).
"""

from __future__ import annotations

import argparse
import sys

from hub.errors import HubError
from hub.rules.errors import RuleFileError


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", default="rules", help="rule file or folder (default: rules)")
    parser.add_argument("--db", help="SQLAlchemy database URL (default: runtime.database_url of the rules)")
    parser.add_argument("--schema", help="PostgreSQL schema holding the tables (default: the search path)")


def load_rules_from_args(args: argparse.Namespace):
    from hub.rules.load import load_rules

    return load_rules(args.rules)


def database_url(args: argparse.Namespace) -> str:
    if args.db:
        return args.db
    return load_rules_from_args(args).runtime.database_url


def open_store_from_args(args: argparse.Namespace, *, migrate: bool = True):
    from hub.store import open_store

    return open_store(database_url(args), schema=args.schema, migrate=migrate)


def report_errors(run):
    """Wrap a command: rule and hub errors print one clear line and exit 1."""
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except RuleFileError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 1
        except HubError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return wrapped


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="ledger and audit database (migrations)")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply every pending migration (alembic upgrade head)")
    add_store_arguments(upgrade)
    upgrade.set_defaults(func=report_errors(run_upgrade))
    current = actions.add_parser("current", help="print the database's migration revision")
    add_store_arguments(current)
    current.set_defaults(func=report_errors(run_current))


def run_upgrade(args: argparse.Namespace) -> int:
    from hub.store.migrate import current_revision, head_revision

    store = open_store_from_args(args, migrate=True)
    print(f"database at revision {current_revision(store.engine)} (head {head_revision()})")
    store.close()
    return 0


def run_current(args: argparse.Namespace) -> int:
    from hub.store.migrate import current_revision, head_revision

    store = open_store_from_args(args, migrate=False)
    revision = current_revision(store.engine)
    print(f"{revision or 'empty (run devsync db upgrade)'} (head {head_revision()})")
    store.close()
    return 0 if revision == head_revision() else 1
