"""Annotation endpoints (contract A1-A6), history, revert, asOf, ground truth (3.4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import anyio.to_thread
import msgspec
from litestar import Controller, MediaType, Request, Response, delete, get, patch, post, put
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.annotation_dtos import (
    AnnotationIn,
    AnnotationOut,
    AnnotationPatch,
    HistoryChange,
    HistoryEntryOut,
    RevertIn,
    TrackBoxOut,
    ValidateIn,
    annotation_out,
    box_out,
    changes_of,
    draft_of,
    etag,
    row_out,
    tuple_out,
    version_from,
)
from api.inputs import InputDTO, InputError, checked, decode_input
from api.projects import Message
from api.services import Services, caught_up, meta_of, services_of
from commands.annotation_history import HistoryEntry, annotation_history, state_as_of
from commands.annotations import (
    CreateAnnotation,
    CreateAnnotations,
    DeleteAnnotation,
    RestoreAnnotation,
    RevertAnnotation,
    UpdateAnnotation,
    ValidateAnnotation,
    create_annotation,
    create_annotations,
    delete_annotation,
    restore_annotation,
    revert_annotation,
    update_annotation,
    validate_annotation,
)
from commands.application import Verity
from commands.context import run_as
from domain.annotations import check_draft
from domain.errors import ConcurrentModification, InvalidValue, NotFound
from domain.events import EventMeta
from domain.limits import BULK_BODY_MAX, MAX_COUNT, Identifier
from domain.tracks import interpolate_track
from projections import annotations as read
from projections.videos import VideoRow, get_video

_encoder = msgspec.json.Encoder()
C = TypeVar("C")
R = TypeVar("R")


async def run_command(
    services: Services, request: Request[Any, Any, Any], handler: Callable[[C, Verity], R], cmd: C
) -> R:
    """Run a handler off the loop, recorded as `meta_for(request)`."""
    return await anyio.to_thread.run_sync(run_as, meta_for(request), handler, cmd, services.app)


def meta_for(request: Request[Any, Any, Any]) -> EventMeta:
    """The request's principal and correlation. A client-chosen header (the original's
    `X-Actor`) is never trusted: the actor is who authenticated, or `anonymous`."""
    return meta_of(request)


async def guarded(
    services: Services,
    request: Request[Any, Any, Any],
    handler: Callable[[C, Verity], R],
    cmd: C,
    from_header: bool,
) -> R:
    """A stale If-Match is 412 Precondition Failed; a stale expectedVersion stays 409."""
    try:
        return await run_command(services, request, handler, cmd)
    except ConcurrentModification as err:
        if from_header:
            raise HTTPException(
                status_code=412,
                detail=err.detail,
                extra={"currentVersion": err.current_version},
            ) from None
        raise


async def load_video(services: Services, video_id: UUID) -> VideoRow:
    async with services.read_pool.connection() as conn:
        row = await get_video(conn, video_id)
    if row is None:
        raise NotFound("Video", video_id, "Video not found")
    return row


async def load_annotation(services: Services, annotation_id: UUID) -> read.AnnotationRow:
    async with services.read_pool.connection() as conn:
        row = await read.get_annotation(conn, annotation_id)
    if row is None:
        raise NotFound("Annotation", annotation_id, "Annotation not found")
    return row


def tagged(out: AnnotationOut) -> Response[AnnotationOut]:
    return Response(out, headers={"ETag": etag(out.version)})


async def respond(services: Services, annotation_id: UUID) -> Response[AnnotationOut]:
    return tagged(row_out(await load_annotation(services, annotation_id)))


def _history_out(entry: HistoryEntry) -> HistoryEntryOut:
    return HistoryEntryOut(
        version=entry.version,
        event_type=entry.event_type,
        at=entry.at,
        actor=entry.actor,
        correlation_id=entry.correlation_id,
        changes=[HistoryChange(field=c.field, old=c.old, new=c.new) for c in entry.changes],
        state=annotation_out(entry.state),
    )


async def _history(services: Services, annotation_id: UUID) -> list[HistoryEntry]:
    return await anyio.to_thread.run_sync(annotation_history, services.app, annotation_id)


def _parse_as_of(value: str) -> int | datetime:
    text = value.strip()
    if text.isascii() and text.isdigit() and len(text) <= len(str(MAX_COUNT)):
        return int(text)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"asOf: expected a version number or an ISO-8601 time, got {value!r}", "asOf", 400
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class BulkOut(msgspec.Struct, kw_only=True):
    created: int
    ids: list[UUID]


ValidatedOnly = Annotated[bool | None, QueryParameter(name="validatedOnly")]


class AnnotationsController(Controller):
    tags = ["annotations"]

    @get(
        "/api/videos/{video_id:uuid}/annotations",
        operation_id="listVideoAnnotations",
        summary="Live annotations of a video in frame order (A1)",
        responses={200: ResponseSpec(data_container=list[AnnotationOut], description="List")},
    )
    async def list_annotations(
        self,
        state: State,
        video_id: FromPath[UUID],
        validated_only: FromQuery[bool | None] = None,
        validated_only_camel: ValidatedOnly = None,
    ) -> Response[bytes]:
        services = services_of(state)
        await load_video(services, video_id)
        only = bool(validated_only or validated_only_camel)

        async def render() -> bytes:
            async with services.read_pool.connection() as conn:
                rows = await read.annotation_tuples(conn, video_id, validated_only=only)
            return _encoder.encode([tuple_out(r) for r in rows])

        name = read.AnnotationsProjection.name
        body = await services.responses.get(name, ("video", video_id, only), render)
        return Response(content=body, media_type=MediaType.JSON)

    @post(
        "/api/videos/{video_id:uuid}/annotations",
        operation_id="createAnnotation",
        summary="Create an annotation (A2); the box must lie inside the video's frame",
        status_code=200,
        dto=InputDTO[AnnotationIn],
        return_dto=None,
    )
    async def create_annotation(
        self,
        state: State,
        request: Request[Any, Any, Any],
        video_id: FromPath[UUID],
        data: JSONBody[AnnotationIn],
    ) -> Response[AnnotationOut]:
        services = services_of(state)
        video = await load_video(services, video_id)
        cmd = CreateAnnotation(video_id=video_id, draft=draft_of(data, video.fps))
        position = await run_command(services, request, create_annotation, cmd)
        await caught_up(services, position, "annotations_v1")
        return await respond(services, cmd.id)

    @post(
        "/api/videos/{video_id:uuid}/annotations/bulk",
        operation_id="createAnnotations",
        summary="Create many annotations at once (e.g. a detector's candidates)",
        description="Every row is checked first; any bad row: 422 naming its index and field, "
        "nothing stored. Stored in batches of 2,000 per transaction.",
        status_code=200,
        request_max_body_size=BULK_BODY_MAX,
    )
    async def create_many(
        self,
        state: State,
        request: Request[Any, Any, Any],
        video_id: FromPath[UUID],
    ) -> BulkOut:
        services = services_of(state)
        video = await load_video(services, video_id)
        data = decode_input(await request.body(), list[AnnotationIn])
        drafts = []
        for i, row in enumerate(data):
            try:
                draft = draft_of(row, video.fps)
                check_draft(
                    draft,
                    (video.width, video.height) if video.width and video.height else None,
                    video.frame_count,
                )
            except InvalidValue as err:
                raise InputError(f"[{i}].{err.detail}", f"[{i}].{err.field}") from None
            drafts.append(draft)
        cmd = CreateAnnotations(video_id=video_id, drafts=tuple(drafts))
        ids, position = await run_command(services, request, create_annotations, cmd)
        await caught_up(services, position, "annotations_v1")
        return BulkOut(created=len(ids), ids=ids)

    @get(
        "/api/annotations/{annotation_id:uuid}",
        operation_id="getAnnotation",
        summary="One annotation; `asOf` (version number or ISO time) returns a past state",
        description="Without asOf this reads the read model; with asOf it replays the stored "
        "events (an audit read).",
    )
    async def get_annotation(
        self,
        state: State,
        annotation_id: FromPath[UUID],
        as_of: Annotated[str | None, QueryParameter(name="asOf", max_length=64)] = None,
    ) -> Response[AnnotationOut]:
        services = services_of(state)
        if as_of is None:
            return await respond(services, annotation_id)
        point = _parse_as_of(as_of)
        entries = await _history(services, annotation_id)
        if isinstance(point, int):
            if not 1 <= point <= len(entries):
                raise InputError(
                    f"asOf: version must be between 1 and {len(entries)}, got {point}", "asOf"
                )
            entry: HistoryEntry | None = entries[point - 1]
        else:
            entry = state_as_of(entries, point)
        if entry is None:
            raise NotFound(
                "Annotation", annotation_id, f"Annotation {annotation_id} did not exist at {as_of}"
            )
        return tagged(annotation_out(entry.state, entries[0].at, entry.at))

    @put(
        "/api/annotations/{annotation_id:uuid}",
        operation_id="updateAnnotation",
        summary="Update an annotation (A3): only changed fields are recorded",
        description='Send If-Match: "<version>" (412 when stale) or expectedVersion in the '
        "body (409 when stale) to refuse lost updates.",
        dto=InputDTO[AnnotationPatch],
        return_dto=None,
    )
    async def update_annotation(
        self,
        state: State,
        request: Request[Any, Any, Any],
        annotation_id: FromPath[UUID],
        data: JSONBody[AnnotationPatch],
    ) -> Response[AnnotationOut]:
        services = services_of(state)
        expected, from_header = version_from(request.headers.get("if-match"), data.expected_version)
        cmd = UpdateAnnotation(
            id=annotation_id,
            changes=changes_of(data),
            validated=None if isinstance(data.validated, msgspec.UnsetType) else data.validated,
            expected_version=expected,
        )
        position = await guarded(services, request, update_annotation, cmd, from_header)
        await caught_up(services, position, "annotations_v1")
        return await respond(services, annotation_id)

    @delete(
        "/api/annotations/{annotation_id:uuid}",
        operation_id="deleteAnnotation",
        summary="Delete an annotation (A4); soft: history keeps it and it can be restored",
        status_code=200,
    )
    async def delete_annotation(
        self,
        state: State,
        request: Request[Any, Any, Any],
        annotation_id: FromPath[UUID],
        expected_version: Annotated[
            int | None, QueryParameter(name="expectedVersion", ge=0, le=MAX_COUNT)
        ] = None,
    ) -> Message:
        services = services_of(state)
        expected, from_header = version_from(request.headers.get("if-match"), expected_version)
        cmd = DeleteAnnotation(id=annotation_id, expected_version=expected)
        position = await guarded(services, request, delete_annotation, cmd, from_header)
        await caught_up(services, position, "annotations_v1")
        return Message(message="Annotation deleted successfully")

    @post(
        "/api/annotations/{annotation_id:uuid}/restore",
        operation_id="restoreAnnotation",
        summary="Bring back a deleted annotation",
        status_code=200,
    )
    async def restore_annotation(
        self, state: State, request: Request[Any, Any, Any], annotation_id: FromPath[UUID]
    ) -> Response[AnnotationOut]:
        services = services_of(state)
        expected, from_header = version_from(request.headers.get("if-match"), None)
        cmd = RestoreAnnotation(id=annotation_id, expected_version=expected)
        position = await guarded(services, request, restore_annotation, cmd, from_header)
        await caught_up(services, position, "annotations_v1")
        return await respond(services, annotation_id)

    @patch(
        "/api/annotations/{annotation_id:uuid}/validate",
        operation_id="validateAnnotation",
        summary="Set the validated flag (A5): `validated` from the JSON body or the query",
    )
    async def validate_annotation(
        self,
        state: State,
        request: Request[Any, Any, Any],
        annotation_id: FromPath[UUID],
        validated: FromQuery[bool | None] = None,
    ) -> Response[AnnotationOut]:
        services = services_of(state)
        raw = await request.body()
        body = decode_input(raw, ValidateIn) if raw.strip() else ValidateIn()
        flag = body.validated if body.validated is not None else validated
        if flag is None:
            raise InputError("validated: field is required (JSON body or query)", "validated")
        expected, from_header = version_from(request.headers.get("if-match"), body.expected_version)
        cmd = ValidateAnnotation(id=annotation_id, validated=flag, expected_version=expected)
        position = await guarded(services, request, validate_annotation, cmd, from_header)
        await caught_up(services, position, "annotations_v1")
        return await respond(services, annotation_id)

    @get(
        "/api/annotations/detection/{detection_id:str}",
        operation_id="listTrackAnnotations",
        summary="The boxes of one detection id (a track) in time order (A6)",
    )
    async def track_annotations(
        self, state: State, detection_id: FromPath[str]
    ) -> list[AnnotationOut]:
        detection_id = checked(detection_id, Identifier, "detectionId")
        async with services_of(state).read_pool.connection() as conn:
            rows = await read.track(conn, detection_id)
        return [row_out(r) for r in rows]

    @get(
        "/api/annotations/detection/{detection_id:str}/frames",
        operation_id="listTrackFrames",
        summary="A track per frame: keyframes marked, frames between them interpolated",
    )
    async def track_frames(
        self, state: State, detection_id: FromPath[str], interpolate: FromQuery[bool] = True
    ) -> list[TrackBoxOut]:
        detection_id = checked(detection_id, Identifier, "detectionId")
        async with services_of(state).read_pool.connection() as conn:
            rows = await read.track(conn, detection_id)
        states = [r.state() for r in rows]
        if interpolate:
            boxes = interpolate_track(states)
        else:
            boxes = [b for s in states for b in interpolate_track([s])]
        return [
            TrackBoxOut(
                frame_number=b.frame_number,
                timestamp=b.timestamp,
                bounding_box=box_out(b.box, b.vru_type, None),
                keyframe=b.keyframe,
                annotation_id=b.annotation_id,
                vru_type=b.vru_type,
                detection_id=b.detection_id,
            )
            for b in boxes
        ]

    @get(
        "/api/annotations/{annotation_id:uuid}/history",
        operation_id="annotationHistory",
        summary="Every version: time, actor, event type, field-level diff, state after",
        description="Read from the event store itself (an audit read), not a read model.",
    )
    async def history(self, state: State, annotation_id: FromPath[UUID]) -> list[HistoryEntryOut]:
        entries = await _history(services_of(state), annotation_id)
        return [_history_out(e) for e in entries]

    @post(
        "/api/annotations/{annotation_id:uuid}/revert",
        operation_id="revertAnnotation",
        summary="Bring back an earlier version as a new event (history is never rewritten)",
        status_code=200,
        dto=InputDTO[RevertIn],
        return_dto=None,
    )
    async def revert(
        self,
        state: State,
        request: Request[Any, Any, Any],
        annotation_id: FromPath[UUID],
        data: JSONBody[RevertIn],
    ) -> Response[AnnotationOut]:
        services = services_of(state)
        expected, from_header = version_from(request.headers.get("if-match"), data.expected_version)
        cmd = RevertAnnotation(id=annotation_id, version=data.version, expected_version=expected)
        position = await guarded(services, request, revert_annotation, cmd, from_header)
        await caught_up(services, position, "annotations_v1")
        async with services.read_pool.connection() as conn:
            row = await read.get_annotation(conn, annotation_id, include_deleted=True)
        if row is None:
            raise NotFound("Annotation", annotation_id, "Annotation not found")
        return tagged(row_out(row))
