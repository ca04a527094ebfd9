"""The Holter analysis API (FastAPI) under /api/v1/holter/; OpenAPI at /openapi.json.

Every error is JSON `{"code": ..., "message": ...}` (hub.holter.errors.STATUS maps codes to
HTTP statuses); 429 carries Retry-After. Endpoints are plain `def` (run in the thread pool)
except the streamed PUT upload.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.holter import jobs, webhooks
from hub.holter.auth import RateLimiter, verify_key
from hub.holter.errors import HolterError
from hub.holter.formats import check_file_format
from hub.holter.metrics import REQUESTS, UPLOAD_BYTES
from hub.holter.models import (
    CancelResponse,
    ErrorBody,
    ReviewRequest,
    StatusResponse,
    SubmitRequest,
    SubmitResponse,
    UploadResponse,
    UploadUrlRequest,
    UploadUrlResponse,
)
from hub.holter.settings import HolterSettings
from hub.holter.store import database_url, open_engine, server_secret, tasks
from hub.holter.uploads import receive_upload, safe_filename, sign_upload_token, verify_upload_token
from hub.holter.worker import Dispatcher, task_dir
from hub.logs import get_logger

PREFIX = "/api/v1/holter"
IMAGE_NAMES = ("hr_trend.png",) + tuple(f"strip{i}.png" for i in range(20))
ERRORS = {s: {"model": ErrorBody} for s in (401, 404, 409, 422, 429)}
log = get_logger("holter.api")
bearer = HTTPBearer(auto_error=False, description="API key from `devsync holter key create NAME`")


def create_app(settings: HolterSettings, *, start_workers: bool = True) -> FastAPI:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    engine = open_engine(database_url(settings.data_dir, settings.database_url))
    owner = uuid.uuid4().hex
    dispatcher = Dispatcher(engine, settings, owner)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if start_workers:
            dispatcher.start()
        yield
        if start_workers:
            dispatcher.stop()

    app = FastAPI(title="DeviceSync Hub - Holter ECG analysis", version="1.0.0", lifespan=lifespan,
                  description="Asynchronous long-term ECG analysis: upload, submit, status, result, report, cancel, review; signed webhooks.")
    app.state.engine, app.state.settings, app.state.secret = engine, settings, server_secret(engine)
    app.state.limiter = RateLimiter()
    _install_error_handlers(app)
    _add_routes(app)
    return app


def _error(code: str, message: str, status: int, retry_after: float | None = None) -> JSONResponse:
    REQUESTS.labels(code=code).inc()
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HolterError)
    async def _holter(_req: Request, exc: HolterError):
        return _error(exc.code, exc.message, exc.status, exc.retry_after)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:10])
        return _error("invalid_request", problems or "invalid request", 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(code, str(exc.detail), exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(_req: Request, exc: Exception):
        log.error("unhandled error", error=f"{type(exc).__name__}: {exc}")
        return _error("internal_error", f"internal error ({type(exc).__name__}); see the service log", 500)


def _key(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> dict:
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else request.headers.get("authorization")
    key = verify_key(request.app.state.engine, header)
    s: HolterSettings = request.app.state.settings
    request.app.state.limiter.take(key["key_id"], key["rate_limit_per_minute"] or s.default_rate_limit_per_minute, now=time.monotonic())
    return key


ApiKey = Annotated[dict, Depends(_key)]


def _base_url(request: Request) -> str:
    configured = request.app.state.settings.public_base_url
    return (configured or str(request.base_url)).rstrip("/")


def _status_body(conn, row) -> dict:
    error = {"code": row["error_code"], "message": row["error_message"] or ""} if row["error_code"] else None
    progress = {stage: 0.0 for stage in jobs.STAGES}
    progress.update(json.loads(row["progress_json"] or "{}"))
    return {"task_id": row["id"], "status": row["state"], "progress": progress, "queue_position": jobs.queue_position(conn, row),
            "priority": {v: k for k, v in jobs.PRIORITY_RANK.items()}[row["priority"]], "error": error,
            "created_at": row["created_at"], "updated_at": row["updated_at"], "webhooks": webhooks.list_deliveries(conn, row["id"])}


def _add_routes(app: FastAPI) -> None:
    @app.get(f"{PREFIX}/health", tags=["service"])
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.post(f"{PREFIX}/upload-url", response_model=UploadUrlResponse, status_code=201, responses=ERRORS, tags=["upload"])
    def upload_url(body: UploadUrlRequest, request: Request, key: ApiKey):
        s: HolterSettings = request.app.state.settings
        check_file_format(body.file_format)
        if body.file_size > s.max_upload_bytes:
            raise HolterError("file_too_large", f"file_size {body.file_size} exceeds the limit of {s.max_upload_bytes} bytes")
        if body.duration_hours and body.duration_hours > s.max_duration_hours:
            raise HolterError("duration_too_long", f"duration_hours {body.duration_hours:g} exceeds {s.max_duration_hours:g}")
        now = time.time()
        task_id, nonce, expires = uuid.uuid4().hex, secrets.token_hex(16), now + s.upload_url_ttl_s
        with request.app.state.engine.begin() as conn:
            conn.execute(tasks.insert().values(
                id=task_id, key_id=key["key_id"], state="pending", filename=body.filename, file_format=body.file_format,
                file_size=body.file_size, checksum=body.checksum.lower(), duration_hours=body.duration_hours, upload_nonce=nonce,
                upload_expires=expires, uploaded=False, priority=1, progress_json="{}", created_at=now, updated_at=now))
        token = sign_upload_token(request.app.state.secret, task_id, expires, nonce)
        return UploadUrlResponse(task_id=task_id, upload_url=f"{_base_url(request)}{PREFIX}/upload/{task_id}?token={token}",
                                 headers={"Content-Type": "application/octet-stream"}, expires_at=float(int(expires)),
                                 max_file_size=min(s.max_upload_bytes, body.file_size))

    @app.put(f"{PREFIX}/upload/{{task_id}}", response_model=UploadResponse, responses={**ERRORS, 403: {"model": ErrorBody},
             410: {"model": ErrorBody}, 413: {"model": ErrorBody}}, tags=["upload"])
    async def upload(task_id: str, request: Request, token: str = Query(..., max_length=1000)):
        engine, s = request.app.state.engine, request.app.state.settings
        nonce = verify_upload_token(request.app.state.secret, token, task_id, now=time.time())
        row = await run_in_threadpool(_start_upload, engine, task_id, nonce)
        target = task_dir(s, task_id) / "upload" / safe_filename(row["filename"])
        try:
            size = await receive_upload(request.stream(), target, declared_size=row["file_size"], max_bytes=s.max_upload_bytes,
                                        md5_hex=row["checksum"])
        except BaseException:
            await run_in_threadpool(_end_upload, engine, task_id, False)
            raise
        await run_in_threadpool(_end_upload, engine, task_id, True)
        UPLOAD_BYTES.inc(size)
        return UploadResponse(task_id=task_id, received_bytes=size, checksum=row["checksum"], status="pending")

    @app.post(f"{PREFIX}/submit", response_model=SubmitResponse, status_code=202, responses=ERRORS, tags=["jobs"])
    def submit(body: SubmitRequest, request: Request, key: ApiKey):
        engine, s = request.app.state.engine, request.app.state.settings
        with engine.connect() as conn:
            row = jobs.get_task(conn, body.task_id, key["key_id"])
        if row["state"] != "pending" or not row["uploaded"] or row["submitted_at"] is not None:
            raise HolterError("wrong_state", f"task {body.task_id} is {row['state']}" + ("" if row["uploaded"] else " and not uploaded yet")
                              + ("; already submitted" if row["submitted_at"] else "") + "; submit needs an uploaded, unsubmitted task")
        from hub.holter.inputs import preflight  # signal libraries load on first use, not at start-up

        folder = task_dir(s, body.task_id)
        scratch = folder / "preflight"
        try:
            preflight(folder / "upload" / safe_filename(row["filename"]), row["file_format"], scratch, s, sampling_rate=body.sampling_rate)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        now = time.time()
        with engine.begin() as conn:
            jobs.transition(conn, body.task_id, "pending", now=now, submitted_at=now, priority=jobs.PRIORITY_RANK[body.priority],
                            request_json=body.model_dump_json())
            row = jobs.get_task(conn, body.task_id)
            return SubmitResponse(task_id=body.task_id, status=row["state"], queue_position=jobs.queue_position(conn, row), priority=body.priority)

    @app.get(f"{PREFIX}/status/{{task_id}}", response_model=StatusResponse, responses=ERRORS, tags=["jobs"])
    def status(task_id: str, request: Request, key: ApiKey):
        with request.app.state.engine.connect() as conn:
            return _status_body(conn, jobs.get_task(conn, task_id, key["key_id"]))

    @app.get(f"{PREFIX}/result/{{task_id}}", responses=ERRORS, tags=["jobs"])
    def result(task_id: str, request: Request, key: ApiKey) -> dict:
        data = _result_of(request, task_id, key)
        base = _base_url(request)
        for strip in data["strips"]:
            strip["image_url"] = base + strip["image_url"]
        data["heart_rate"]["trend_image_url"] = base + data["heart_rate"]["trend_image_url"]
        return data

    @app.get(f"{PREFIX}/report/{{task_id}}", responses={**ERRORS, 200: {"content": {"application/pdf": {}, "text/html": {}}}}, tags=["jobs"])
    def report(task_id: str, request: Request, key: ApiKey, format: Literal["pdf", "html"] = "pdf",
               template: Literal["standard", "detailed", "summary"] = "standard"):
        from hub.holter.report import render_html, render_pdf

        data = _result_of(request, task_id, key)
        images = task_dir(request.app.state.settings, task_id) / "images"
        if format == "html":
            return HTMLResponse(render_html(data, images, template))
        return Response(render_pdf(data, images, template), media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="holter-{task_id}-{template}.pdf"'})

    @app.get(f"{PREFIX}/images/{{task_id}}/{{name}}", responses={**ERRORS, 200: {"content": {"image/png": {}}}}, tags=["jobs"])
    def image(task_id: str, name: str, request: Request, key: ApiKey):
        _result_of(request, task_id, key)
        path = task_dir(request.app.state.settings, task_id) / "images" / name
        if name not in IMAGE_NAMES or not path.exists():
            raise HolterError("not_found", f"no image {name!r} for task {task_id} (see the result's image URLs)")
        return FileResponse(path, media_type="image/png")

    @app.post(f"{PREFIX}/cancel/{{task_id}}", response_model=CancelResponse, responses=ERRORS, tags=["jobs"])
    def cancel(task_id: str, request: Request, key: ApiKey):
        with request.app.state.engine.begin() as conn:
            jobs.get_task(conn, task_id, key["key_id"])
            jobs.transition(conn, task_id, "cancelled", now=time.time())
        return CancelResponse(task_id=task_id, status="cancelled")

    @app.post(f"{PREFIX}/review/{{task_id}}", response_model=StatusResponse, responses=ERRORS, tags=["jobs"])
    def review(task_id: str, body: ReviewRequest, request: Request, key: ApiKey):
        if body.action == "amend" and not body.conclusion:
            raise HolterError("invalid_request", "action 'amend' needs a conclusion")
        now = time.time()
        with request.app.state.engine.begin() as conn:
            row = jobs.get_task(conn, task_id, key["key_id"])
            if row["state"] != "doctor_reviewing":
                raise HolterError("wrong_state", f"task {task_id} is {row['state']}; review needs doctor_reviewing")
            data = json.loads(row["result_json"])
            data["reviewer"].update(status="confirmed" if body.action == "confirm" else "amended", reviewer=body.reviewer, reviewed_at=now,
                                    conclusion=body.conclusion if body.action == "amend" else data["summary"]["conclusion"],
                                    amended=body.action == "amend", notes=body.notes)
            progress = json.loads(row["progress_json"] or "{}")
            progress["doctor_reviewing"] = 100.0
            jobs.transition(conn, task_id, "completed", now=now, result_json=json.dumps(data), progress_json=json.dumps(progress),
                            review_json=body.model_dump_json())
            request_body = json.loads(row["request_json"] or "{}")
            if request_body.get("callback_url"):
                from hub.holter.result import enqueue_completed

                enqueue_completed(conn, task_id, row["key_id"], request_body["callback_url"], data, now=now)
            return _status_body(conn, jobs.get_task(conn, task_id))


def _start_upload(engine, task_id: str, nonce: str) -> dict:
    with engine.begin() as conn:
        row = jobs.get_task(conn, task_id)
        if row["upload_nonce"] != nonce:
            raise HolterError("upload_url_invalid", "upload token does not belong to this task")
        if row["uploaded"]:
            raise HolterError("upload_url_used", f"task {task_id} was already uploaded; upload URLs are single-use")
        jobs.transition(conn, task_id, "uploading", now=time.time(), progress_json=json.dumps({"uploading": 0.0}))
        return dict(row)


def _end_upload(engine, task_id: str, ok: bool) -> None:
    with engine.begin() as conn:
        try:
            jobs.transition(conn, task_id, "pending", now=time.time(), uploaded=ok,
                            progress_json=json.dumps({"uploading": 100.0 if ok else 0.0}))
        except HolterError:
            pass  # cancelled while uploading


def _result_of(request: Request, task_id: str, key: dict) -> dict:
    with request.app.state.engine.connect() as conn:
        row = jobs.get_task(conn, task_id, key["key_id"])
    if row["state"] not in ("doctor_reviewing", "completed") or not row["result_json"]:
        raise HolterError("wrong_state", f"task {task_id} is {row['state']}; results exist once it is doctor_reviewing or completed")
    return json.loads(row["result_json"])
