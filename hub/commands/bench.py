"""`devsync bench NAME [options] --out FILE.json`: run one benchmark, print and save figures."""

from __future__ import annotations

import argparse
import importlib

from hub.bench import BENCHMARKS, write_results


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="run a benchmark and write its figures as JSON")
    names = bench.add_subparsers(dest="bench_name", required=True, metavar="NAME")
    for name, module_path in BENCHMARKS.items():
        module = importlib.import_module(module_path)
        p = names.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None)
        p.add_argument("--out", help="write results JSON here")
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
        p.set_defaults(func=lambda args, m=module, n=name: _run(n, m, args))


def _run(name: str, module, args: argparse.Namespace) -> int:
    write_results(name, module.run(args), args.out)
    return 0
