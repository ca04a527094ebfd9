"""`devsync` command line. Each command lives in its own module under hub/commands/ and
registers itself with `register(subparsers)`; this file only lists them."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = [
    "hub.commands.rules",
    "hub.commands.demo",
    "hub.commands.run",
    "hub.commands.bench",
    "hub.commands.kafka",
    "hub.commands.worker",
    "hub.commands.deliver",
    "hub.commands.edge",
    "hub.commands.db",
    "hub.commands.audit",
    "hub.commands.dlq",
    "hub.commands.status",
    "hub.commands.ecg",
    "hub.commands.holter",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devsync", description="DeviceSync Hub: clinical device data into the EHR.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
