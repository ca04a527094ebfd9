"""`devsync status`: per sink, in = delivered + held back by charting + parked + DLQ (+ in flight)."""

from __future__ import annotations

import argparse
import json

from hub.commands.db import add_store_arguments, open_store_from_args, report_errors
from hub.store.records import DELIVERED, DLQ, HELD, PARKED, SENT

COLUMNS = (DELIVERED, HELD, PARKED, DLQ, SENT)


def register(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", help="delivery counts per sink from the ledger")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_store_arguments(status)
    status.set_defaults(func=report_errors(run_status))


def run_status(args: argparse.Namespace) -> int:
    store = open_store_from_args(args)
    counts = store.counts()
    open_letters = len(store.dead_letters())
    store.close()
    rows = [{"sink": c.sink, "in": c.total_in, **{col: c.get(col) for col in COLUMNS}} for c in counts]
    if args.json:
        print(json.dumps({"sinks": rows, "dlq_open": open_letters}, indent=2))
        return 0
    header = f"{'sink':<10} {'in':>9} = {'delivered':>9} + {'held':>9} + {'parked':>9} + {'dlq':>9} + {'in flight':>9}"
    print(header)
    for row in rows:
        print(f"{row['sink']:<10} {row['in']:>9,} = {row[DELIVERED]:>9,} + {row[HELD]:>9,} + {row[PARKED]:>9,} + "
              f"{row[DLQ]:>9,} + {row[SENT]:>9,}")
    print(f"dead letters open: {open_letters} (devsync dlq list)")
    return 0
