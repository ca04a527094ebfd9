"""`devsync demo` end to end through the installed CLI: every output validates with the libraries
(hl7apy + python-hl7 for HL7 v2, fhir.resources for FHIR) and the counts add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub.render.validate import validate_observation, validate_oru_r01, validate_oru_r40

DEVSYNC = str(Path(sys.executable).parent / "devsync")


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    run = subprocess.run([DEVSYNC, "demo", "--duration", "15", "--out", str(out), "--metrics-port", "0",
                          "--summary-every", "5"], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "live summary" in run.stdout and "Final report" in run.stdout
    return out


def test_every_hl7_message_validates(demo_out):
    files = sorted((demo_out / "hl7v2").glob("*.hl7"))
    assert len(files) > 50
    kinds = {"ORU^R01^ORU_R01": 0, "ORU^R40^ORU_R40": 0}
    for path in files:
        text = path.read_bytes().decode()  # read_text() would turn the CRs into newlines
        assert "\n" not in text.strip("\r"), f"{path.name}: segments must be separated by CR only"
        msh9 = text.split("\r")[0].split("|")[8]
        kinds[msh9] += 1
        (validate_oru_r01 if msh9 == "ORU^R01^ORU_R01" else validate_oru_r40)(text)
    assert kinds["ORU^R01^ORU_R01"] > 40 and kinds["ORU^R40^ORU_R40"] >= 8  # vitals and every alarm start/end


def test_every_fhir_resource_validates(demo_out):
    lines = [line for path in (demo_out / "fhir").glob("*.ndjson") for line in path.read_text().splitlines()]
    assert len(lines) > 40
    ids = set()
    for line in lines:
        resource = json.loads(line)
        validate_observation(resource)
        codings = {c["system"] for c in resource["code"]["coding"]}
        assert {"http://loinc.org", "urn:iso:std:iso:11073:10101"} <= codings
        ids.add(resource["identifier"][0]["value"])
    assert len(ids) == len(lines), "each observation exactly once"


def test_summary_counts_add_up(demo_out):
    summary = json.loads((demo_out / "summary.json").read_text())
    assert summary["duplicates_dropped"] > 0 and summary["reordered"] > 0
    assert summary["parked"] > 0 and summary["released_from_parking"] == summary["parked"], \
        "the late-admitted bed's readings are parked, then released by the ADT admit"
    assert summary["dlq"] == 1, "the one reading with an unknown vendor code"
    assert summary["conflicts_resolved_by_policy"].get("source-rank", 0) > 0
    for sink, counts in summary["sinks"].items():
        accounted = sum(v for k, v in counts.items() if k in ("delivered", "held", "dlq", "released"))
        assert counts["in"] == accounted, f"{sink}: in != delivered + held + dlq ({counts})"
    assert summary["outputs"]["fhir_resources"] == summary["sinks"]["fhir"]["delivered"]


def test_no_patient_identifiers_in_demo_logs(tmp_path):
    """Logs carry device and step, never patient ids or names (PHI stays out by default)."""
    out = tmp_path / "out"
    run = subprocess.run([DEVSYNC, "demo", "--duration", "6", "--out", str(out), "--metrics-port", "0",
                          "--log-level", "DEBUG"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "step=" in run.stderr  # structured logs were written
    for token in ("MRN100", "Demo^Patient", "Patient01"):
        assert token not in run.stderr
