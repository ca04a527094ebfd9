"""The watch-folder import against a real PACS (Orthanc): formats, half-written and corrupt files,
a restart half way, routing to PACS and FHIR, the error folder with reasons, no double import."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml
from orthanc_peer import free_port

from connectors.ecg import read_ecg
from hub.ecg_watch import DUPLICATE, ERROR, IMPORTED, RETRY, EcgWatcher
from hub.render.sampled_data import parse_sampled_data
from hub.render.validate import validate_observation
from hub.rules.association import StaticBinding
from hub.rules.ecg import EcgRules, PacsRules
from hub.rules.load import load_rules

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT.parent / "shared" / "data"
BINDINGS = [{"location": "ICU1-BED03", "patient_id": "SBJ-123", "encounter_id": "ENC-3"},
            {"location": "ECG-LAB", "patient_id": "PAT-LAB-1", "encounter_id": "ENC-LAB", "patient_name": "Lab Patient"}]
WATCH = {"settle_s": 1.0, "location": "ECG-LAB", "csv_sample_rate_hz": 500.0}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch_rules(pacs: PacsRules | None, fhir_out: Path):
    base = load_rules(ROOT / "rules")
    association = base.association.model_copy(update={
        "static_bindings": [StaticBinding(**b) for b in BINDINGS]})
    ecg = EcgRules.model_validate({"watch": WATCH, "fhir_out": str(fhir_out)})
    ecg = ecg.model_copy(update={"pacs": pacs})
    return base.model_copy(update={"association": association, "ecg": ecg})


def drop(folder: Path, source: str, name: str | None = None) -> Path:
    target = folder / (name or Path(source).name)
    shutil.copyfile(DATA / source, target)
    return target


def by_name(outcomes):
    return {o.name: o for o in outcomes}


def test_watch_folder_imports_routes_and_survives_a_restart(orthanc, pacs_rules, tmp_path):
    inbox, fhir_out, clock = tmp_path / "in", tmp_path / "fhir", Clock()
    inbox.mkdir()
    rules = watch_rules(pacs_rules, fhir_out)
    before = set(orthanc.instances())
    drop(inbox, "aecg/hl7_example_aECG.xml")                       # HL7 aECG, patient SBJ-123 (bound by id)
    drop(inbox, "scp/contec_ecg90a_0000050.scp")                   # SCP-ECG, no patient id: the lab's patient
    drop(inbox, "csv/ecg_plot_12lead_500hz.csv")                   # CSV (rate from the rules)
    for part in ("s0010_re.hea", "s0010_re.dat", "s0010_re.xyz"):  # WFDB: 15 leads at 1000 Hz, travels as a group
        drop(inbox, f"wfdb/{part}")
    (inbox / "broken.scp").write_bytes((DATA / "scp/ecgtoolkit_Example.scp").read_bytes()[:3000])  # corrupt
    drop(inbox, "edf/test_edfann.edf")                             # EDF+ with annotations only: no ECG
    drop(inbox, "dicom/pydicom_waveform_ecg.dcm")                  # names patient 642341, the lab holds another
    half = inbox / "late.edf"
    edf = (DATA / "edf/contec_ecg90a_0000050.edf").read_bytes()
    half.write_bytes(edf[: len(edf) // 2])                         # being written
    (inbox / "upload.dcm.part").write_bytes((DATA / "dicom/ecgtoolkit_Example.dcm").read_bytes())  # rename-into-place

    watcher = EcgWatcher(inbox, rules, clock=clock)
    assert asyncio.run(watcher.run_once()) == []                   # first sighting: nothing is settled yet
    clock.now += 1.5
    with half.open("ab") as fh:                                    # still growing at the second scan
        fh.write(edf[len(edf) // 2: len(edf) * 3 // 4])
    first = by_name(asyncio.run(watcher.run_once()))
    assert {n: o.status for n, o in first.items()} == {
        "hl7_example_aECG.xml": IMPORTED, "contec_ecg90a_0000050.scp": IMPORTED,
        "ecg_plot_12lead_500hz.csv": IMPORTED, "s0010_re.hea": IMPORTED,
        "broken.scp": ERROR, "test_edfann.edf": ERROR, "pydicom_waveform_ecg.dcm": ERROR}
    assert "patient mismatch" in first["pydicom_waveform_ecg.dcm"].reason
    assert "no ECG samples" in first["test_edfann.edf"].reason

    # restart half way: a new watcher on the same folder; the writer finishes, the upload is renamed into place,
    # and the aECG is dropped again under another name
    with half.open("ab") as fh:
        fh.write(edf[len(edf) * 3 // 4:])
    (inbox / "upload.dcm.part").rename(inbox / "upload.dcm")
    drop(inbox, "aecg/hl7_example_aECG.xml", "again.xml")
    watcher = EcgWatcher(inbox, rules, clock=clock)
    assert asyncio.run(watcher.run_once()) == []
    clock.now += 1.5
    second = by_name(asyncio.run(watcher.run_once()))
    assert {n: o.status for n, o in second.items()} == {"late.edf": IMPORTED, "upload.dcm": IMPORTED,
                                                       "again.xml": DUPLICATE}
    assert second["again.xml"].sop_instance_uid == first["hl7_example_aECG.xml"].sop_instance_uid

    # PACS: one instance per imported ECG (the duplicate was not sent again); patient merged from the bindings
    imported = [o for o in [*first.values(), *second.values()] if o.status == IMPORTED]
    added = set(orthanc.instances()) - before
    assert len(added) == len({o.sop_instance_uid for o in imported}) == len(imported) == 6
    for outcome in imported:
        ds = pydicom.dcmread(io.BytesIO(orthanc.instance_file(outcome.sop_instance_uid)))
        expected = "SBJ-123" if outcome.name in ("hl7_example_aECG.xml", "upload.dcm") else "PAT-LAB-1"
        assert str(ds.PatientID) == expected, outcome.name
    csv_ds = pydicom.dcmread(io.BytesIO(orthanc.instance_file(first["ecg_plot_12lead_500hz.csv"].sop_instance_uid)))
    assert str(csv_ds.PatientName) == "Lab^Patient"

    # FHIR: one Observation per imported ECG, valid, with the source's samples
    files = sorted(fhir_out.glob("*.ndjson"))
    assert len(files) == len(imported)
    obs = json.loads(Path(first["hl7_example_aECG.xml"].fhir_file).read_text())
    validate_observation(obs)
    assert obs["subject"]["identifier"]["value"] == "SBJ-123"
    assert obs["encounter"]["identifier"]["value"] == "ENC-3"
    source = read_ecg(DATA / "aecg/hl7_example_aECG.xml")
    lead_ii = next(c for c in obs["component"] if c["code"]["coding"][0]["code"] == "131330")
    values = np.asarray(parse_sampled_data(lead_ii["valueSampledData"]), dtype=float)
    assert np.allclose(values, source.lead("II").physical(), atol=1e-9)
    for path in files:
        validate_observation(json.loads(path.read_text()))

    # folders: failures with reasons, imported files (and the duplicate) moved to done/
    errors = inbox / "error"
    for name in ("broken.scp", "test_edfann.edf", "pydicom_waveform_ecg.dcm"):
        assert (errors / name).exists()
        assert (errors / f"{name}.reason.txt").read_text().strip()
    assert sorted(p.name for p in (inbox / "done").iterdir()) == sorted(
        ["hl7_example_aECG.xml", "contec_ecg90a_0000050.scp", "ecg_plot_12lead_500hz.csv", "s0010_re.hea",
         "s0010_re.dat", "s0010_re.xyz", "late.edf", "upload.dcm", "again.xml"])
    assert [p.name for p in inbox.iterdir() if p.is_file()] == [".devsync-ecg-journal.jsonl"]
    journal = [json.loads(line) for line in (inbox / ".devsync-ecg-journal.jsonl").read_text().splitlines()]
    imported_hashes = [e["hash"] for e in journal if e["status"] == IMPORTED]
    assert len(imported_hashes) == len(set(imported_hashes)) == len(imported)


def test_a_pacs_that_is_down_leaves_the_file_for_the_next_scan(orthanc, pacs_rules, tmp_path):
    inbox, clock = tmp_path / "in", Clock()
    inbox.mkdir()
    down = PacsRules(host="127.0.0.1", port=free_port(), called_aet="DOWN", connect_timeout_s=2, retry_after_s=0.1)
    drop(inbox, "scp/ecgtoolkit_Example.scp")
    watcher = EcgWatcher(inbox, watch_rules(down, tmp_path / "fhir"), clock=clock)
    asyncio.run(watcher.run_once())
    clock.now += 1.5
    [outcome] = asyncio.run(watcher.run_once())
    assert outcome.status == RETRY and "association" in outcome.reason
    assert (inbox / "ecgtoolkit_Example.scp").exists() and not (inbox / "error").exists()
    watcher.pacs = pacs_rules                                      # the PACS is back
    [outcome] = asyncio.run(watcher.run_once())
    assert outcome.status == IMPORTED
    assert orthanc.lookup(outcome.sop_instance_uid) is not None
    assert not (inbox / "ecgtoolkit_Example.scp").exists()


def test_the_command_line_watch_once_with_erase_on_success(orthanc, tmp_path):
    rules_dir, inbox, fhir_out = tmp_path / "rules", tmp_path / "in", tmp_path / "fhir"
    rules_dir.mkdir()
    inbox.mkdir()
    for path in (ROOT / "rules").glob("*.yaml"):
        if path.name != "ward.yaml":
            shutil.copyfile(path, rules_dir / path.name)
    (rules_dir / "lab.yaml").write_text(yaml.safe_dump({
        "version": 1, "association": {"encounter_source": "static", "static_bindings": BINDINGS},
        "ecg": {"watch": {**WATCH, "settle_s": 0.5}}}))
    drop(inbox, "dicom/ecgtoolkit_Example.dcm")
    drop(inbox, "edf/test_edfann.edf")
    cmd = [sys.executable, "-m", "hub.cli", "ecg", "watch", str(inbox), "--rules", str(rules_dir), "--pacs",
           f"127.0.0.1:{orthanc.dicom_port}", "--aet", orthanc.aet, "--fhir-out", str(fhir_out), "--once",
           "--erase-on-success"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 1, done.stderr  # one file went to the error folder
    lines = sorted(done.stdout.splitlines())
    assert lines[0].startswith("error     test_edfann.edf: ")
    assert lines[1].startswith("imported  ecgtoolkit_Example.dcm -> 1.2.826.0.1.3680043.10.1443.")
    assert not (inbox / "ecgtoolkit_Example.dcm").exists() and not (inbox / "done").exists()  # erased
    assert (inbox / "error" / "test_edfann.edf.reason.txt").exists()
    assert len(list(fhir_out.glob("*.ndjson"))) == 1
