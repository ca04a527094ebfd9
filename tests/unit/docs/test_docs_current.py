"""Docs that are generated must match the code; the README must name every command."""

import os
from pathlib import Path

from hub.cli_docs import list_commands, render_cli_reference

ROOT = Path(__file__).resolve().parents[3]


def test_cli_reference_is_current():
    os.environ["COLUMNS"] = "100"
    assert (ROOT / "docs" / "cli.md").read_text() == render_cli_reference(), \
        "docs/cli.md is stale: run `COLUMNS=100 python -m hub.cli_docs > docs/cli.md`"


def test_readme_names_every_command():
    readme = (ROOT / "README.md").read_text()
    missing = [c for c in list_commands() if f"`{c}" not in readme]
    assert not missing, f"README.md does not document: {missing}"


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("##")[0]
    assert "make demo" in head and "make test" in head
