"""The watch-folder import: ECG files dropped in a folder go to the PACS and/or FHIR, once each.

    watcher = EcgWatcher(folder, rules)                 # settings from rules.ecg (watch, pacs, fhir_out)
    outcomes = await watcher.run_once()                 # one scan: import every file that is ready
    await watcher.run(stop)                             # scan every poll_interval_s until `stop` is set

A file is taken only when it (and its companions: the .dat/.atr of a WFDB .hea) kept the same
size and mtime for `settle_s`, and never while it ends in .part/.tmp (write, then rename into
place). Its format is detected by content. The patient comes from the association data: the
file's patient id looked up in the bindings, else the binding of the folder's device/location;
a file whose id disagrees with the location's patient is refused. Then it is routed: C-STORE
to the PACS (DICOM ECG) and/or a FHIR Observation with SampledData per lead (NDJSON file).

Exactly once across restarts: a journal (JSON lines) records each file's content hash and
outcome; a file whose hash is journalled as imported is never imported again, only moved.
Every step before the journal line is idempotent (the DICOM UIDs and the FHIR file name derive
from the content), so a crash between routing and journalling repeats it harmlessly.
Failures move the file to `error/` with `<name>.reason.txt`; a PACS that is down (retriable)
leaves the file where it is for the next scan.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from hub.errors import HubError, SinkError
from hub.logs import get_logger
from hub.rules.ecg import PacsRules
from hub.rules.models import RuleSet

log = get_logger("ecg.watch")
IMPORTED, DUPLICATE, ERROR, RETRY = "imported", "duplicate", "error", "retry"


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # imported | duplicate | error | retry
    reason: str = ""
    content_hash: str = ""
    sop_instance_uid: str | None = None
    fhir_file: str | None = None


class WatchError(HubError):
    """A file that cannot be imported (bad content, no patient, rejected by the PACS)."""


class EcgWatcher:
    def __init__(self, folder: str | Path, rules: RuleSet, *, pacs: PacsRules | None = None,
                 fhir_out: str | Path | None = None, erase_on_success: bool | None = None,
                 clock: Callable[[], float] | None = None):
        import time

        self.folder = Path(folder)
        self.rules = rules
        self.config = rules.ecg.watch
        self.pacs = pacs if pacs is not None else rules.ecg.pacs
        out = fhir_out if fhir_out is not None else rules.ecg.fhir_out
        self.fhir_out = Path(out) if out else None
        self.erase = self.config.erase_on_success if erase_on_success is None else erase_on_success
        self.clock = clock or time.time
        self.error_dir = self.folder / self.config.error_dir
        self.done_dir = self.folder / self.config.done_dir if self.config.done_dir else None
        self.journal_path = self.folder / self.config.journal
        self.journal = load_journal(self.journal_path)
        self._seen: dict[str, tuple[tuple, float]] = {}  # name -> (signature, since)

    # ---- scanning ----
    def groups(self) -> dict[str, list[Path]]:
        """Primary file name -> the files that travel with it (WFDB: .hea + its signal/annotation files)."""
        files = [p for p in self.folder.iterdir() if p.is_file() and not self._ignored(p)]
        headers = {p.stem for p in files if p.suffix.lower() == ".hea"}
        groups: dict[str, list[Path]] = {}
        for path in sorted(files):
            if path.stem in headers and path.suffix.lower() != ".hea":
                groups.setdefault(path.stem + ".hea", []).append(path)
            else:
                groups.setdefault(path.name, []).insert(0, path)
        return {name: members for name, members in groups.items() if (self.folder / name).exists()}

    def _ignored(self, path: Path) -> bool:
        name = path.name
        return name.startswith(".") or any(name.lower().endswith(s) for s in self.config.ignore_suffixes)

    def ready(self) -> list[tuple[str, list[Path]]]:
        """Groups whose files kept size and mtime for settle_s (half-written files wait)."""
        now = self.clock()
        out = []
        groups = self.groups()
        for name, members in groups.items():
            try:
                signature = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in members)
            except FileNotFoundError:
                continue
            seen = self._seen.get(name)
            if seen is None or seen[0] != signature:
                self._seen[name] = (signature, now)
                if self.config.settle_s > 0:
                    continue
                seen = self._seen[name]
            if now - seen[1] >= self.config.settle_s:
                out.append((name, members))
        for name in list(self._seen):
            if name not in groups:
                del self._seen[name]
        return out

    # ---- processing ----
    async def run_once(self) -> list[Outcome]:
        outcomes = []
        for name, members in self.ready():
            outcome = await self.process(name, members)
            outcomes.append(outcome)
            if outcome.status != RETRY:
                self._seen.pop(name, None)
        return outcomes

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for outcome in await self.run_once():
                log.info("file handled", file=outcome.name, status=outcome.status, reason=outcome.reason[:200])
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.config.poll_interval_s)
            except TimeoutError:
                pass

    async def process(self, name: str, members: list[Path]) -> Outcome:
        primary = self.folder / name
        digest = content_hash(members)
        previous = self.journal.get(digest)
        if previous is not None and previous["status"] == IMPORTED:
            self._finish(members)
            return self._record(Outcome(name, DUPLICATE, f"already imported as {previous['name']}", digest,
                                        previous.get("sop_instance_uid"), previous.get("fhir_file")), journal=False)
        try:
            size = sum(p.stat().st_size for p in members)
            if size > self.config.max_file_bytes:
                raise WatchError(f"{name}: {size} bytes exceeds ecg.watch.max_file_bytes ({self.config.max_file_bytes})")
            try:
                record = self._read(primary)
            except HubError:
                raise
            except Exception as exc:  # a reader tripping over a corrupt file must not stop the watcher
                raise WatchError(f"{name}: cannot read as ECG: {type(exc).__name__}: {exc}") from exc
            record, encounter = bind_record(record, self.rules)
            sop_uid = await self._store_pacs(record)
            fhir_file = self._write_fhir(record, name, digest, encounter)
        except SinkError as exc:
            if exc.retriable:
                log.warning("PACS unavailable; file kept for the next scan", file=name, reason=exc.reason[:200])
                return Outcome(name, RETRY, exc.reason, digest)
            return self._fail(name, members, digest, exc.reason)
        except HubError as exc:
            return self._fail(name, members, digest, str(exc))
        except OSError as exc:  # the file vanished or cannot be read/written
            return self._fail(name, members, digest, f"{name}: {type(exc).__name__}: {exc}")
        outcome = self._record(Outcome(name, IMPORTED, "", digest, sop_uid, fhir_file))
        self._finish(members)
        return outcome

    def _read(self, path: Path):
        from connectors.ecg import EcgFormatError, detect_format, read_ecg

        fmt = detect_format(path)
        options = {}
        if fmt == "csv" and self.config.csv_sample_rate_hz:
            options["sample_rate"] = self.config.csv_sample_rate_hz
        record = read_ecg(path, format=fmt, **options)
        if not record.leads or record.n_samples == 0:
            raise EcgFormatError(path.name, f"{fmt} file holds no ECG samples (annotations only?)")
        return record

    async def _store_pacs(self, record) -> str | None:
        if self.pacs is None:
            return None
        from hub.sinks.dicom import DicomSink

        return (await DicomSink(self.pacs).store_record(record)).sop_instance_uid

    def _write_fhir(self, record, name: str, digest: str, encounter: str | None) -> str | None:
        if self.fhir_out is None:
            return None
        import orjson

        from hub.render.sampled_data import build_sampled_data_observation

        obs = build_sampled_data_observation(strip_from_record(record, f"ecg-file-{digest[:32]}", encounter))
        self.fhir_out.mkdir(parents=True, exist_ok=True)
        target = self.fhir_out / f"{Path(name).stem}-{digest[:12]}.ndjson"
        tmp = target.with_suffix(".ndjson.tmp")
        tmp.write_bytes(orjson.dumps(obs) + b"\n")
        tmp.replace(target)
        return str(target)

    # ---- bookkeeping ----
    def _record(self, outcome: Outcome, *, journal: bool = True) -> Outcome:
        if journal:
            entry = {"hash": outcome.content_hash, "name": outcome.name, "status": outcome.status,
                     "reason": outcome.reason, "sop_instance_uid": outcome.sop_instance_uid,
                     "fhir_file": outcome.fhir_file, "at": self.clock()}
            with self.journal_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
                fh.flush()
            self.journal[outcome.content_hash] = entry
        return outcome

    def _fail(self, name: str, members: list[Path], digest: str, reason: str) -> Outcome:
        self.error_dir.mkdir(parents=True, exist_ok=True)
        for path in members:
            if path.exists():
                _move(path, self.error_dir)
        (self.error_dir / f"{name}.reason.txt").write_text(reason.rstrip() + "\n", encoding="utf-8")
        log.warning("file moved to the error folder", file=name, reason=reason[:300])
        return self._record(Outcome(name, ERROR, reason, digest))

    def _finish(self, members: list[Path]) -> None:
        for path in members:
            if not path.exists():
                continue
            if self.erase:
                path.unlink(missing_ok=True)
            elif self.done_dir is not None:
                self.done_dir.mkdir(parents=True, exist_ok=True)
                _move(path, self.done_dir)


def _move(path: Path, folder: Path) -> None:
    target = folder / path.name
    if target.exists():
        target.unlink()
    shutil.move(str(path), str(target))


def content_hash(members: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(members, key=lambda p: p.suffix):
        digest.update(path.suffix.lower().encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_journal(path: Path) -> dict[str, dict]:
    """hash -> the latest journal entry; a torn last line (crash while writing) is ignored."""
    entries: dict[str, dict] = {}
    if not path.exists():
        return entries
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("status") == IMPORTED or entries.get(entry["hash"], {}).get("status") != IMPORTED:
            entries[entry["hash"]] = entry
    return entries


def bind_record(record, rules: RuleSet):
    """The record with the patient from the association data, and the encounter id.

    1. The file's patient id is bound (static bindings / ADT state): use that binding.
    2. Else the folder's device (ecg.watch.device_id) or location (ecg.watch.location) holds a
       patient: use it, but refuse a file that names another patient.
    3. Else a file with a patient id passes as it is, unless ecg.watch.require_binding.
    """
    from connectors.ecg.model import Patient
    from hub.associate import AssociationState, locate_device

    watch = rules.ecg.watch
    state = AssociationState.from_rules(rules)
    when = record.start_time.replace(tzinfo=UTC).timestamp() if record.start_time else float("inf")
    file_id = record.patient.id.strip()
    by_id = next((t.at(when) for t in state.location_patient.values()
                  if t.at(when) is not None and t.at(when).patient_id == file_id), None) if file_id else None
    location = watch.location or (locate_device(state, watch.device_id, when) if watch.device_id else None)
    timeline = state.location_patient.get(location) if location else None
    at_location = timeline.at(when) if timeline else None
    binding = by_id
    if binding is None and at_location is not None:
        if file_id and file_id != at_location.patient_id:
            raise WatchError(f"patient mismatch: the file's patient id is not the patient bound to location "
                             f"{location} (check the order at the cart; ids not repeated here)")
        binding = at_location
    if binding is None:
        if not file_id:
            raise WatchError("no patient: the file names none and no binding covers ecg.watch.device_id/location "
                             f"({watch.device_id or watch.location or 'not set'})")
        if watch.require_binding:
            raise WatchError("the file's patient is not bound in the association data (ecg.watch.require_binding)")
        return record, None
    name = binding.patient_name or record.patient.name
    patient = Patient(id=binding.patient_id, name=name, sex=record.patient.sex, birth_date=record.patient.birth_date,
                      age_years=record.patient.age_years)
    return record.with_changes(patient=patient), binding.encounter_id


def strip_from_record(record, identifier: str, encounter: str | None):
    """A whole EcgRecord as one SampledData Strip (each lead keeps its own scale and baseline)."""
    from hub.render.sampled_data import LeadSeries, Strip

    start = record.start_time.replace(tzinfo=UTC).timestamp() if record.start_time else 0.0
    leads = tuple(LeadSeries(lead.name, lead.digital.tolist(), lead.scale, lead.baseline, lead.unit)
                  for lead in record.leads)
    return Strip(identifier, record.patient.id, record.sample_rate, start, leads, encounter_id=encounter,
                 partial=record.session.partial, alarm=record.session.alarm or None)
