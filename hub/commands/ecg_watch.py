"""`devsync ecg watch DIR --rules PATH ...` (also `devsync ecg-watch`): the watch-folder import.

    devsync ecg watch /data/ecg-in --rules rules --pacs pacs.example.org:104 --aet PACS --fhir-out /data/fhir
    devsync ecg watch /data/ecg-in --rules rules --once            # import what is ready, then exit

Settings come from the rules' `ecg:` section (watch, pacs, fhir_out); the flags override them.
Exit status: 0, or 1 when --once left a file in the error folder, 2 for bad arguments or rules.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Top-level `devsync ecg-watch`."""
    _configure(sub.add_parser("ecg-watch", help="import ECG files dropped in a folder (PACS / FHIR SampledData)"))


def register_ecg(cmds: argparse._SubParsersAction) -> None:
    """`devsync ecg watch` (hub.commands.ecg calls this for every module in ECG_SUBCOMMAND_MODULES)."""
    _configure(cmds.add_parser("watch", help="import ECG files dropped in a folder (PACS / FHIR SampledData)"))


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="folder to watch (error/ and done/ are created inside it)")
    p.add_argument("--rules", required=True, help="rule file or folder (the ecg: section holds the settings)")
    p.add_argument("--pacs", metavar="HOST:PORT", help="PACS to C-STORE DICOM ECG to (overrides ecg.pacs)")
    p.add_argument("--aet", help="the PACS's AE title (called AE)")
    p.add_argument("--calling-aet", help="our AE title (default DEVSYNC)")
    p.add_argument("--fhir-out", help="write FHIR Observations with SampledData here (NDJSON, one file per ECG)")
    p.add_argument("--erase-on-success", action="store_true", help="delete imported files instead of moving to done/")
    p.add_argument("--settle", type=float, help="seconds a file must stay unchanged before import (ecg.watch.settle_s)")
    p.add_argument("--once", action="store_true", help="wait one settle period, import what is ready, exit")
    p.set_defaults(func=cmd_watch)


def _pacs(args, rules):
    from hub.rules.ecg import PacsRules

    base = rules.ecg.pacs
    if not args.pacs:
        if base is not None and (args.aet or args.calling_aet):
            return base.model_copy(update={k: v for k, v in {"called_aet": args.aet,
                                                               "calling_aet": args.calling_aet}.items() if v})
        return base
    host, _, port = args.pacs.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--pacs {args.pacs!r}: expected HOST:PORT, e.g. pacs.example.org:104")
    fields = {"host": host, "port": int(port)}
    if base is not None:
        fields = {**base.model_dump(), **fields}
    if args.aet:
        fields["called_aet"] = args.aet
    if args.calling_aet:
        fields["calling_aet"] = args.calling_aet
    return PacsRules.model_validate(fields)


def cmd_watch(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from hub.ecg_watch import ERROR, EcgWatcher
    from hub.errors import RuleError
    from hub.rules.load import load_rules

    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"error: {folder}: not a folder", file=sys.stderr)
        return 2
    try:
        rules = load_rules(args.rules)
        pacs = _pacs(args, rules)
        if args.settle is not None:
            watch = rules.ecg.watch.model_copy(update={"settle_s": args.settle})
            rules = rules.model_copy(update={"ecg": rules.ecg.model_copy(update={"watch": watch})})
    except (RuleError, ValueError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    watcher = EcgWatcher(folder, rules, pacs=pacs, fhir_out=args.fhir_out,
                         erase_on_success=True if args.erase_on_success else None)
    if args.once:
        outcomes = asyncio.run(_once(watcher))
        for o in outcomes:
            extra = f" -> {o.sop_instance_uid or ''} {o.fhir_file or ''}".rstrip() if o.status == "imported" else ""
            print(f"{o.status:9} {o.name}{extra}{(': ' + o.reason) if o.reason else ''}")
        return 1 if any(o.status == ERROR for o in outcomes) else 0
    asyncio.run(_forever(watcher))
    return 0


async def _once(watcher):
    outcomes = await watcher.run_once()
    await asyncio.sleep(watcher.config.settle_s)
    return outcomes + await watcher.run_once()


async def _forever(watcher) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"watching {watcher.folder} (Ctrl-C to stop)", file=sys.stderr)
    await watcher.run(stop)
