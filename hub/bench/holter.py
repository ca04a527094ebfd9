"""Holter: a 24-hour, 2-lead, 256 Hz recording through the real job path.

The recording is synthesised from the real MIT-BIH record 100 (both leads resampled 360 -> 256 Hz
with scipy's polyphase filter, tiled 48 times), written block by block as a WFDB format-16 record
and packed into a tar (the API's `mit` upload), so synthesis never holds 24 h in memory either.
A task row is created as the API does after upload and submit, then `hub.holter.worker.run_task`
(the worker-process entry point) runs in a fresh process: unpack, header checks, chunked QRS
detection, figures, strips, trend picture, result. Figures: wall time of that process
(`holter_24h_analysis_s`, target < 120 s) and its peak resident memory (`holter_24h_peak_rss_mb`,
target < 500 MB), plus the beats found and the recording length.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import resource
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from hub.bench import Figure

DEFAULT_RECORD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "wfdb" / "100"
RATE = 256
GAIN = 200.0  # counts per mV, as MIT-BIH


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record", type=Path, default=DEFAULT_RECORD, help="WFDB record to tile (default MIT-BIH 100)")
    parser.add_argument("--hours", type=float, default=24.0, help="recording length (default 24)")
    parser.add_argument("--workdir", type=Path, help="where to write the synthetic recording (default: a temp folder)")


def synthesise(record: Path, hours: float, out_dir: Path) -> tuple[Path, int]:
    """Write `<out_dir>/holter.hea/.dat` (format 16, 2 leads, 256 Hz) and return (tar path, samples)."""
    from scipy.signal import resample_poly

    from connectors.ecg.wfdb_format import read_wfdb

    src = read_wfdb(record.with_suffix(".hea"))
    leads = [np.rint(resample_poly(lead.microvolts() / 1000.0, RATE, int(src.sample_rate)) * GAIN).astype(np.int16)
             for lead in src.leads[:2]]
    block = np.column_stack(leads)  # one 30-minute tile, interleaved as WFDB stores frames
    total = int(hours * 3600 * RATE)
    checks = [0, 0]
    with open(out_dir / "holter.dat", "wb") as f:
        written = 0
        while written < total:
            part = block[: total - written]
            f.write(part.astype("<i2").tobytes())
            for i in range(2):
                checks[i] += int(part[:, i].astype(np.int64).sum())
            written += len(part)
    names = [lead.name for lead in src.leads[:2]]
    lines = [f"holter 2 {RATE} {total}"]
    for i in range(2):
        first = int(block[0, i])
        checksum = ((checks[i] + 32768) % 65536) - 32768
        lines.append(f"holter.dat 16 {GAIN:g}/mV 16 0 {first} {checksum} 0 {names[i]}")
    (out_dir / "holter.hea").write_text("\n".join(lines) + "\n")
    tar = out_dir / "holter.tar"
    with tarfile.open(tar, "w") as t:
        t.add(out_dir / "holter.hea", "holter.hea")
        t.add(out_dir / "holter.dat", "holter.dat")
    (out_dir / "holter.dat").unlink()
    return tar, total


def prepare_task(data: Path, tar: Path) -> tuple[str, str]:
    """A task as the API leaves it after upload-url, PUT and submit; returns (task id, settings json)."""
    from hub.holter.auth import create_key
    from hub.holter.settings import HolterSettings
    from hub.holter.store import database_url, open_engine, tasks
    from hub.holter.worker import task_dir

    data.mkdir(parents=True, exist_ok=True)
    settings = HolterSettings(data_dir=data)
    engine = open_engine(database_url(data, None))
    key_id = create_key(engine, "bench", now=time.time())[0][3:].split(".")[0]
    task_id = "bench-24h"
    upload = task_dir(settings, task_id) / "upload" / "holter.tar"
    upload.parent.mkdir(parents=True, exist_ok=True)
    tar.replace(upload)
    md5 = hashlib.md5(usedforsecurity=False)
    with open(upload, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
    now = time.time()
    request = {"task_id": task_id, "sampling_rate": RATE, "analysis_options": {"hrv_analysis": True}, "priority": "normal"}
    with engine.begin() as conn:
        conn.execute(tasks.insert().values(
            id=task_id, key_id=key_id, state="preprocessing", filename="holter.tar", file_format="mit", file_size=upload.stat().st_size,
            checksum=md5.hexdigest(), upload_nonce="-", upload_expires=now, uploaded=True, submitted_at=now, priority=1,
            request_json=json.dumps(request), progress_json="{}", owner="bench", created_at=now, updated_at=now))
    engine.dispose()
    return task_id, settings.model_dump_json()


def _run_job(task_id: str, settings_json: str, queue) -> None:
    from hub.holter.worker import run_task

    started = time.perf_counter()
    state = run_task(task_id, settings_json, "bench")
    queue.put((state, time.perf_counter() - started))


def run(args: argparse.Namespace) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="devsync-holter-bench-", dir=args.workdir) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        tar, samples = synthesise(Path(args.record), args.hours, folder)
        synth_s = time.perf_counter() - started
        task_id, settings_json = prepare_task(folder / "data", tar)
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_run_job, args=(task_id, settings_json, queue))
        wall = time.perf_counter()
        proc.start()
        state, inner_s = queue.get()
        proc.join()
        wall = time.perf_counter() - wall
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        if state != "completed":
            raise SystemExit(f"the benchmark job ended {state!r}, not completed")
        from hub.holter.store import database_url, open_engine, tasks

        engine = open_engine(database_url(folder / "data", None))
        with engine.connect() as conn:
            result = json.loads(conn.execute(tasks.select().where(tasks.c.id == task_id)).mappings().first()["result_json"])
        engine.dispose()
    return [
        Figure("holter_24h_analysis_s", wall, "s"),
        Figure("holter_24h_job_s", inner_s, "s"),
        Figure("holter_24h_peak_rss_mb", peak_mb, "MB"),
        Figure("holter_24h_recording_s", samples / RATE, "s"),
        Figure("holter_24h_total_beats", result["heart_rate"]["total_beats"], "count"),
        Figure("holter_24h_mean_bpm", result["heart_rate"]["mean_bpm"], "1/min"),
        Figure("holter_synthesis_s", synth_s, "s"),
    ]
