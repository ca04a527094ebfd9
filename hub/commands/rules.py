"""`devsync rules check PATH`: validate rule files before deploying them.
`devsync rules docs [--out FILE]`: write the rule-file reference generated from the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub.rules.errors import RuleFileError
from hub.rules.load import load_rules_with_origins, rule_files
from hub.rules.reference import build_reference


def register(sub: argparse._SubParsersAction) -> None:
    rules = sub.add_parser("rules", help="work with rule files")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_sub.add_parser("check", help="validate a rule file or folder; exit 1 on any problem")
    check.add_argument("path", help="a .yaml rule file or a folder of them")
    check.set_defaults(func=run_check)
    docs = rules_sub.add_parser("docs", help="write the rule-file reference (Markdown) generated from the schema")
    docs.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    docs.set_defaults(func=run_docs)


def run_check(args: argparse.Namespace) -> int:
    try:
        loaded = load_rules_with_origins(args.path)
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    rules = loaded.rules
    files = rule_files(Path(args.path))
    print(
        f"OK: {len(files)} file(s): {len(rules.device_types)} device types, {len(rules.devices)} devices, "
        f"{len(rules.codes)} metric codes, {len(rules.precedence)} precedence rules, "
        f"{len(rules.sync_profiles)} sync profiles, {len(rules.routing)} routes"
    )
    return 0


def run_docs(args: argparse.Namespace) -> int:
    text = build_reference()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0
