"""`devsync dlq list` and `devsync dlq replay [--id N ...|--all]`.

Replay builds the sinks from the (fixed) rules and sends each open dead letter again through
the sink it failed at; the ledger makes it exactly once (docs/delivery-guarantees.md).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from hub.commands.db import add_store_arguments, load_rules_from_args, open_store_from_args, report_errors


def register(sub: argparse._SubParsersAction) -> None:
    dlq = sub.add_parser("dlq", help="dead-letter queue: list and replay")
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list dead letters (open ones by default)")
    listing.add_argument("--all", action="store_true", help="also replayed and failed ones")
    add_store_arguments(listing)
    listing.set_defaults(func=report_errors(run_list))
    replay = actions.add_parser("replay", help="send dead letters again after fixing the rules or the EHR")
    chosen = replay.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--id", type=int, action="append", dest="ids", metavar="N", help="dead letter id (repeat)")
    chosen.add_argument("--all", action="store_true", help="every open dead letter")
    add_store_arguments(replay)
    replay.set_defaults(func=report_errors(run_replay))


def run_list(args: argparse.Namespace) -> int:
    store = open_store_from_args(args)
    letters = store.dead_letters(status=None if args.all else "open")
    store.close()
    if not letters:
        print("no dead letters" if args.all else "no open dead letters")
        return 0
    print(f"{'id':>6}  {'created (UTC)':<19}  {'sink':<6}  {'step':<12}  {'status':<8}  event / reason")
    for letter in letters:
        created = datetime.fromtimestamp(letter.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{letter.id:>6}  {created:<19}  {letter.sink:<6}  {letter.step:<12}  {letter.status:<8}  "
              f"{letter.event_id}: {letter.reason}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    rules = load_rules_from_args(args)
    store = open_store_from_args(args)
    try:
        letters = store.dead_letters(status=None, ids=args.ids) if args.ids else store.dead_letters()
        missing = sorted(set(args.ids or []) - {letter.id for letter in letters})
        for n in missing:
            print(f"dead letter {n}: no such id (devsync dlq list --all)")
        report = asyncio.run(_replay(rules, store, letters))
    finally:
        store.close()
    for n in report.delivered:
        print(f"dead letter {n}: replayed, delivered")
    for n, reason in report.failed:
        print(f"dead letter {n}: failed again: {reason}")
    for n, reason in report.skipped:
        print(f"dead letter {n}: not replayed: {reason}")
    print(f"{len(report.delivered)} delivered, {len(report.failed)} failed again, {len(report.skipped)} skipped")
    return 0 if not (report.failed or missing) else 1


async def _replay(rules, store, letters):
    from hub.sinks import build_sinks, sinks_by_name
    from hub.sinks.dlq import replay_dead_letters

    sinks = build_sinks(rules, store)
    try:
        return await replay_dead_letters(store, sinks_by_name(sinks), letters)
    finally:
        for sink in sinks:
            await sink.close()
