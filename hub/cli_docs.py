"""The CLI reference (docs/cli.md), generated from the argparse parsers so it cannot drift.

    python -m hub.cli_docs > docs/cli.md
"""

from __future__ import annotations

import argparse
import sys


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _walk(parser: argparse.ArgumentParser, prefix: str):
    children = list(_subparsers(parser))
    if not children:
        yield prefix, parser
    for name, child in children:
        yield from _walk(child, f"{prefix} {name}")


def render_cli_reference() -> str:
    from hub.cli import build_parser

    parser = build_parser()
    parts = ["# `devsync` command reference", "",
             "Generated from the command-line parsers (`python -m hub.cli_docs > docs/cli.md`); a test fails if it drifts.",
             ""]
    for command, sub in _walk(parser, "devsync"):
        sub.prog = command
        parts += [f"## `{command}`", "", (sub.description or sub.format_usage().strip()), "", "```",
                  sub.format_help().rstrip().replace(" ", " "), "```", ""]
    return "\n".join(parts)


def list_commands() -> list[str]:
    from hub.cli import build_parser

    return [command for command, _ in _walk(build_parser(), "devsync")]


if __name__ == "__main__":
    sys.stdout.write(render_cli_reference())
