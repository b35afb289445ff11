"""Annotation export and import (contract A7, A8) and the import job status.

An import reads and checks the whole file before storing anything. With any bad row nothing
is stored (422 listing every problem) unless the caller asks `partial=true`. Imports larger
than JOB_THRESHOLD rows run as a job: the answer (202) names it, progress arrives as
`import_progress` WebSocket messages in the video's room and at GET /api/annotation-imports/{id}.
What one file may hold (bytes, rows, archive members, nesting) and the memory bound that follows
are in formats/import_limits.py; a file over a cap is refused with 413/422 naming the cap (the
status of each kind of refusal is set in api/errors.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Annotated, Any
from uuid import UUID

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery, Parameter

from api.annotations import load_video, meta_for, run_command
from api.inputs import InputError
from api.services import Services, caught_up, services_of
from api.uploads import safe_display_name
from commands.annotations import (
    BULK_BATCH,
    CreateAnnotations,
    FailImport,
    StartImport,
    create_annotations,
    fail_import,
    start_import,
)
from commands.context import run_as
from domain.errors import NotFound
from domain.limits import MAX_NAME
from formats import FORMATS
from formats.common import FormatError, Issue, Parsed, VideoInfo
from formats.import_limits import MAX_IMPORT_BYTES, PARALLEL_PARSES, ImportTooLarge
from projections import annotation_sessions as jobs
from projections import annotations as read
from projections.videos import VideoRow

log = logging.getLogger(__name__)

JOB_THRESHOLD = 5000
"""Rows above which an import runs as a background job."""
IMPORT_BATCH = BULK_BATCH
"""Annotations per transaction (and per progress message) of an import."""

_MULTIPART_SLACK = 64 * 1024
"""Room for the multipart framing around a file of MAX_IMPORT_BYTES."""

_running: set[asyncio.Task[None]] = set()
_parsing = threading.BoundedSemaphore(PARALLEL_PARSES)
"""Bounds the memory all imports hold together (see import_limits); held in the worker thread,
so it does not depend on the event loop."""


def _parse(module: Any, content: bytes, video: VideoInfo) -> Parsed:
    with _parsing:
        parsed: Parsed = module.parse(content, video)
        return parsed


class ImportResult(msgspec.Struct, kw_only=True, rename="camel"):
    imported: int
    errors: list[Issue]
    status: str
    job_id: UUID | None = None
    total: int = 0


class ImportStatusOut(msgspec.Struct, kw_only=True, rename="camel"):
    id: UUID
    video_id: UUID
    format: str
    filename: str
    status: str
    total: int
    imported: int
    rejected: int
    progress: float
    error: str | None


def format_key(name: str | None) -> str:
    return (name or "json").strip().lower()


def format_module(name: str | None) -> Any:
    key = format_key(name)
    module = FORMATS.get(key)
    if module is None:
        allowed = ", ".join(sorted(FORMATS))
        raise InputError(
            f"format: unknown format {key[:40]!r}; allowed values: {allowed}", "format"
        )
    return module


def video_info(row: VideoRow) -> VideoInfo:
    return VideoInfo(
        id=str(row.id),
        name=row.original_name,
        width=row.width,
        height=row.height,
        fps=row.fps,
        frame_count=row.frame_count,
    )


async def _read_upload(request: Request[Any, Any, Any]) -> tuple[bytes, str, str | None]:
    """(content, file name, format field) from multipart `file`, or the raw body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InputError("file: a multipart field named 'file' is required", "file", 400)
        fmt = form.get("format")
        content = await upload.read()
        name = safe_display_name(upload.filename or "upload")[:MAX_NAME]
    else:
        content, name, fmt = await request.body(), "upload", None
    if not content:
        raise InputError("file: the request has no file", "file", 400)
    if len(content) > MAX_IMPORT_BYTES:
        raise _too_large()
    return content, name, fmt if isinstance(fmt, str) else None


def _too_large() -> ImportTooLarge:
    return ImportTooLarge(
        f"file: larger than {MAX_IMPORT_BYTES} bytes (MAX_IMPORT_BYTES); split it into "
        "several imports"
    )


async def _run_job(services: Services, meta: Any, cmd: CreateAnnotations) -> None:
    try:
        await anyio.to_thread.run_sync(run_as, meta, create_annotations, cmd, services.app)
    except Exception as err:
        log.exception("annotation import %s failed", cmd.job_id)
        assert cmd.job_id is not None
        fail = FailImport(id=cmd.job_id, reason=f"{type(err).__name__}: {err}")
        await anyio.to_thread.run_sync(run_as, meta, fail_import, fail, services.app)


def _refusal(parsed: Parsed) -> HTTPException:
    first = parsed.issues[0]
    where = (
        f"row {first.row}"
        if first.row is not None
        else f"line {first.line}"
        if first.line is not None
        else ""
    )
    place = " ".join(p for p in (first.file or "", where) if p)
    detail = (
        f"{len(parsed.issues)} invalid rows; nothing imported (send partial=true to import the "
        f"{len(parsed.drafts)} valid rows). First: {place}: {first.message}"
    )
    return HTTPException(
        status_code=422,
        detail=detail,
        extra={
            "imported": 0,
            "errorCount": len(parsed.issues),
            "errors": msgspec.to_builtins(parsed.issues[:MAX_LISTED_ERRORS]),
        },
    )


MAX_LISTED_ERRORS = 100
"""Rows listed in a refusal (the count says how many there are): a 100k-row file of bad rows
must not answer with a 10 MB body."""


class AnnotationTransferController(Controller):
    tags = ["annotations"]

    @get(
        "/api/videos/{video_id:uuid}/annotations/export",
        operation_id="exportAnnotations",
        summary="Export a video's annotations (A7): json, coco, yolo, pascal_voc (= pascal), "
        "cvat, mot",
        description="interpolate=true adds the interpolated frames of every track.",
    )
    async def export(
        self,
        state: State,
        video_id: FromPath[UUID],
        format: FromQuery[str] = "json",  # noqa: A002 - the contract's query name
        interpolate: FromQuery[bool] = False,
        validated_only: FromQuery[bool] = False,
    ) -> Response[bytes]:
        module = format_module(format)
        services = services_of(state)
        video = await load_video(services, video_id)
        states = await read.current_annotations(
            services.read_pool, video_id, validated_only=validated_only
        )
        info = video_info(video)
        try:
            content: bytes = await anyio.to_thread.run_sync(
                module.export, states, info, interpolate
            )
        except FormatError as err:
            raise InputError(err.message, "format", 422) from None
        name = f"annotations_{video_id}_{format}.{module.EXTENSION}"
        return Response(
            content,
            media_type=module.MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @post(
        "/api/videos/{video_id:uuid}/annotations/import",
        operation_id="importAnnotations",
        summary="Import annotations from a file (A8): multipart `file`, `format` in query or form",
        description="The whole file is checked first. Any invalid row: 422 with every problem "
        "and nothing stored, unless partial=true. Large files run as a job (202).",
        status_code=200,
        request_max_body_size=MAX_IMPORT_BYTES + _MULTIPART_SLACK,
    )
    async def import_file(
        self,
        state: State,
        request: Request[Any, Any, Any],
        video_id: FromPath[UUID],
        format: FromQuery[str | None] = None,  # noqa: A002 - the contract's query name
        partial: FromQuery[bool] = False,
    ) -> Response[ImportResult]:
        services = services_of(state)
        video = await load_video(services, video_id)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_IMPORT_BYTES + _MULTIPART_SLACK:
            raise _too_large()  # a refused file is answered by api/errors.py
        content, filename, form_format = await _read_upload(request)
        chosen = format_key(format or form_format)
        module = format_module(chosen)
        parsed = await anyio.to_thread.run_sync(_parse, module, content, video_info(video))
        if parsed.issues and not partial:
            raise _refusal(parsed)
        drafts = tuple(parsed.drafts)
        if len(drafts) > JOB_THRESHOLD:
            start = StartImport(
                video_id=video_id,
                format=chosen,
                filename=filename,
                total=len(drafts),
                rejected=len(parsed.issues),
            )
            position = await run_command(services, request, start_import, start)
            await caught_up(services, position, "annotations_v1")
            cmd = CreateAnnotations(
                video_id=video_id, drafts=drafts, job_id=start.id, batch_size=IMPORT_BATCH
            )
            task = asyncio.create_task(_run_job(services, meta_for(request), cmd))
            _running.add(task)
            task.add_done_callback(_running.discard)
            result = ImportResult(
                imported=0,
                errors=parsed.issues,
                status="running",
                job_id=start.id,
                total=len(drafts),
            )
            return Response(result, status_code=202)
        # Small enough for one transaction: all rows are stored, or none.
        cmd = CreateAnnotations(video_id=video_id, drafts=drafts, batch_size=max(len(drafts), 1))
        ids, position = await run_command(services, request, create_annotations, cmd)
        await caught_up(services, position, "annotations_v1")
        return Response(
            ImportResult(
                imported=len(ids), errors=parsed.issues, status="completed", total=len(drafts)
            )
        )

    @get(
        "/api/annotation-imports/{import_id:uuid}",
        operation_id="getAnnotationImport",
        summary="Status and progress of an import job",
    )
    async def import_status(
        self, state: State, import_id: Annotated[UUID, Parameter()]
    ) -> ImportStatusOut:
        async with services_of(state).read_pool.connection() as conn:
            row = await jobs.get_import(conn, import_id)
        if row is None:
            raise NotFound("Import", import_id, "Import not found")
        return ImportStatusOut(
            id=row.id,
            video_id=row.video_id,
            format=row.format,
            filename=row.filename,
            status=row.status,
            total=row.total,
            imported=row.imported,
            rejected=row.rejected,
            progress=round(row.imported / row.total, 4) if row.total else 1.0,
            error=row.error,
        )
