"""Nightly-style fuzz run: atheris (libFuzzer, coverage-guided) drives the same properties as the
hypothesis tests in this folder, through hypothesis' `fuzz_one_input`, so there is one definition
of "accepted or rejected with a clear error" per target.

    python tests/fuzz/run_atheris.py test_fuzz_mllp:test_any_stream_gives_frames_or_specific_problems 50000

Runs the property on RUNS generated inputs (libFuzzer's -runs), with the product packages
(hub, connectors) instrumented for coverage. A property failure or a crash stops the run with
the input saved as crash-<hash> in the working folder and a non-zero exit; one input taking more
than FUZZ_TIMEOUT_S seconds (default 60: a hang, not a slow file on a busy machine) does the same. `scripts/fuzz-nightly.sh` runs every target.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent


def load_property(spec: str):
    module_name, _, test_name = spec.partition(":")
    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=["hub", "connectors"]):
        module = importlib.import_module(module_name)
    test = getattr(module, test_name)
    if not hasattr(test, "hypothesis"):
        raise SystemExit(f"{spec} is not a hypothesis @given test")
    return test.hypothesis.fuzz_one_input


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    spec, runs = argv[1], int(argv[2])
    fuzz_one_input = load_property(spec)
    timeout_s = int(os.environ.get("FUZZ_TIMEOUT_S", "60"))  # one input taking longer is a hang
    atheris.Setup([argv[0], f"-runs={runs}", f"-timeout={timeout_s}", "-rss_limit_mb=4096", "-print_final_stats=1",
                   *argv[3:]], fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
