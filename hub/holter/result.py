"""One job, start to finish, inside a worker process: preprocessing, chunked analysis, figures,
strips and trend picture, the result document, and the final state with its webhook."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy.engine import Engine

from hub.holter import jobs, webhooks
from hub.holter.analysis import NOT_ANALYSED, analyse_stream, build_summary, choose_strips, compute_figures
from hub.holter.errors import JobCancelled
from hub.holter.images import render_strip, render_trend
from hub.holter.inputs import open_checked
from hub.holter.settings import HolterSettings
from hub.holter.uploads import safe_filename
from hub.logs import get_logger

log = get_logger("holter.job")
API = "/api/v1/holter"


def _progress(engine: Engine, task_id: str, stage: str, percent: float, owner: str) -> None:
    with engine.begin() as conn:
        if not jobs.set_progress(conn, task_id, stage, percent, now=time.time(), owner=owner):
            raise JobCancelled(f"task {task_id} is no longer running under this instance (cancelled or taken over)")


def finish_analysis(engine: Engine, s: HolterSettings, task_id: str, owner: str) -> str:
    from hub.holter.worker import task_dir

    with engine.connect() as conn:
        row = dict(jobs.get_task(conn, task_id))
    request = json.loads(row["request_json"] or "{}")
    folder = task_dir(s, task_id)
    upload = folder / "upload" / safe_filename(row["filename"])
    work = folder / "work"
    _progress(engine, task_id, "preprocessing", 10, owner)
    rec = open_checked(upload, row["file_format"], work, s, sampling_rate=request.get("sampling_rate"),
                       gain=request.get("gain"), zero_voltage=request.get("zero_voltage"))
    try:
        _progress(engine, task_id, "preprocessing", 100, owner)
        with engine.begin() as conn:
            jobs.transition(conn, task_id, "ai_analyzing", now=time.time(), owner=owner)
        beats, good = analyse_stream(rec, s, work / "chunks",
                                     on_chunk=lambda done, total: _progress(engine, task_id, "ai_analyzing", 90.0 * done / total, owner),
                                     on_resume=lambda done, total: rec.notes.append(f"resumed from checkpoint after chunk {done} of {total}"))
        figures = compute_figures(beats, rec.sample_rate, good, rec.duration_s, s)
        result = build_result(task_id, rec, figures, beats, request, s, folder / "images")
    finally:
        rec.close()
    _progress(engine, task_id, "ai_analyzing", 100, owner)
    return store_result(engine, task_id, owner, row["key_id"], request, result)


def build_result(task_id: str, rec, figures: dict, beats, request: dict, s: HolterSettings, images: Path) -> dict:
    options = request.get("analysis_options") or {}
    strips = []
    for n, (start_s, label) in enumerate(choose_strips(figures, rec.duration_s, s)):
        render_strip(rec, start_s, min(s.strip_s, rec.duration_s), beats, label, images / f"strip{n}.png")
        strips.append({"index": n, "label": label, "start_s": round(start_s, 3), "duration_s": min(s.strip_s, rec.duration_s),
                       "image_url": f"{API}/images/{task_id}/strip{n}.png"})
    render_trend(figures["hr_trend"], images / "hr_trend.png", pauses=figures["pauses"]["episodes"])
    hr = dict(figures["heart_rate"])
    hr["trend"] = figures["hr_trend"]
    hr["trend_bin_s"] = s.hr_bin_s
    hr["trend_image_url"] = f"{API}/images/{task_id}/hr_trend.png"
    hrv_requested = options.get("hrv_analysis", True)
    return {
        "task_id": task_id,
        "summary": build_summary(rec, figures, options),
        "heart_rate": hr,
        "pauses": figures["pauses"],
        "ectopy": {"analysed": False, "reason": NOT_ANALYSED["ectopy"], "supraventricular": None, "ventricular": None},
        "atrial_fibrillation": figures["atrial_fibrillation"] if options.get("arrhythmia_detection", True) else
        {"analysed": False, "reason": "arrhythmia_detection was not requested"},
        "st_analysis": {"analysed": False, "reason": NOT_ANALYSED["st"], "requested": bool(options.get("st_analysis", False))},
        "pacemaker": {"analysed": False, "reason": NOT_ANALYSED["pacemaker"], "requested": bool(options.get("pacemaker_detection", False))},
        "hrv": {"time_domain": figures["hrv_time"], "frequency_domain": figures["hrv_frequency"],
                "nn_definition": "RR intervals between analysable beats, 0.3-2.0 s, changing at most 20 % from the previous "
                                 "accepted one (no beat classifier: ectopic beats are filtered by this rule only)"}
        if hrv_requested else {"analysed": False, "reason": "hrv_analysis was not requested"},
        "strips": strips,
        "reviewer": {"required": bool(options.get("doctor_review", False)), "status": "pending" if options.get("doctor_review") else
                     "not_requested", "reviewer": None, "reviewed_at": None, "conclusion": None, "amended": False, "notes": None},
        "settings": {"pause_threshold_s": s.pause_threshold_s, "chunk_s": s.chunk_s, "af_window_beats": s.af_window_beats},
    }


def store_result(engine: Engine, task_id: str, owner: str, key_id: str, request: dict, result: dict) -> str:
    now = time.time()
    review = bool((request.get("analysis_options") or {}).get("doctor_review", False))
    target = "doctor_reviewing" if review else "completed"
    with engine.begin() as conn:
        jobs.transition(conn, task_id, target, now=now, owner=owner, result_json=json.dumps(result))
        if target == "completed" and request.get("callback_url"):
            enqueue_completed(conn, task_id, key_id, request["callback_url"], result, now=now)
    log.info("job analysed", task=task_id, state=target, beats=result["heart_rate"]["total_beats"])
    return target


def enqueue_completed(conn, task_id: str, key_id: str, url: str, result: dict, *, now: float) -> None:
    payload = {
        "event": "analysis.completed", "task_id": task_id, "status": "completed", "timestamp": now,
        "result_url": f"{API}/result/{task_id}", "report_url": f"{API}/report/{task_id}?format=pdf",
        "summary": {"conclusion": (result.get("reviewer") or {}).get("conclusion") or result["summary"]["conclusion"],
                    "total_beats": result["heart_rate"]["total_beats"], "mean_bpm": result["heart_rate"]["mean_bpm"],
                    "pauses": result["pauses"]["count"], "af_episodes": result["atrial_fibrillation"].get("episodes"),
                    "analysable_duration_s": result["summary"]["analysable_duration_s"]},
    }
    webhooks.enqueue_webhook(conn, task_id=task_id, key_id=key_id, url=url, event="analysis.completed", payload=payload, now=now)
