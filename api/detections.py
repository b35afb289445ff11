"""Detections over HTTP (contract T5-T7) and the batch form of the device wire format.

The original's way in (one POST per detection, T7) and the device way (a frame message, here
or over NATS) go through the same command, `record_frames`, so both are stored, deduplicated
and projected identically.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, Parameter

from api.group_commit import FrameOutcome
from api.inputs import InputError, SkipQuery, decode_input
from api.services import Services, caught_up, meta_of, principal, services_of
from api.test_sessions import load_session
from commands.detections import Rejection
from commands.device_messages import FrameMessage, InvalidMessage, decode_frame
from domain.access import PrincipalKind
from domain.detections import detection_id, frame_id
from domain.errors import Conflict, NotFound
from domain.limits import (
    MAX_SECONDS,
    Coordinate,
    FrameNumber,
    Identifier,
    Label,
    OptionalIdentifier,
    OptionalName,
    Size,
)
from domain.vru import VruType
from projections import test_sessions as read
from projections.evaluations import detection_outcomes
from projections.service import ReadSideTimeout
from projections.videos import get_video

HTTP_DEVICE = "http"
"""Device id recorded for detections posted one at a time (T7)."""


class BoundingBoxIn(msgspec.Struct, kw_only=True):
    x: Coordinate
    y: Coordinate
    width: Size
    height: Size


class DetectionEventIn(msgspec.Struct, kw_only=True):
    """T7 as cameras and the original's Raspberry Pi client post it. A negative timestamp
    and a confidence outside 0-1 get the original's 400 messages (`_message_from_event`),
    so only their far ends are bounded here."""

    test_session_id: UUID
    timestamp: Annotated[float, msgspec.Meta(le=MAX_SECONDS)]
    confidence: float | None = None
    class_label: Label | None = None
    vru_type: Label | None = None
    frame_number: FrameNumber | None = None
    bounding_box: BoundingBoxIn | None = None
    track_id: OptionalIdentifier | None = None
    device_id: Identifier | None = None
    model_version: OptionalIdentifier | None = None
    validation_result: OptionalName | None = None
    """Accepted for compatibility and ignored: the evaluation decides TP/FP."""


class DetectionEventOut(msgspec.Struct, kw_only=True):
    detection_id: UUID
    validation_result: str | None
    status: str


class FrameStoredOut(msgspec.Struct, kw_only=True, rename="camel"):
    frame_id: UUID
    status: str
    """`stored`, or `duplicate` when this (deviceId, sessionId, seq) was stored before."""
    detection_ids: list[UUID]


class BoxOut(msgspec.Struct, kw_only=True):
    x: float
    y: float
    width: float
    height: float


class DetectionOut(msgspec.Struct, kw_only=True):
    """The original's `Det` item (snake_case, as its pages read it) plus device facts."""

    id: UUID
    detection_id: UUID
    test_session_id: UUID
    timestamp: float
    frame_number: int | None
    confidence: float | None
    class_label: str
    vru_type: str
    bounding_box: BoxOut | None
    track_id: str | None
    device_id: str
    seq: int
    model_version: str | None
    captured_at: datetime | None
    received_at: datetime
    created_at: datetime
    screenshot_path: None = None
    screenshot_zoom_path: None = None
    has_visual_evidence: bool = False
    processing_time_ms: None = None
    validation_result: str | None = None
    """`TP`, `FP` or `BELOW_THRESHOLD` in the newest recorded evaluation of its session; null
    before one exists."""


class SessionDetectionsOut(msgspec.Struct, kw_only=True):
    test_session_id: UUID
    test_session_name: str
    video_id: UUID
    total_detections: int
    detections: list[DetectionOut]
    session_status: str
    started_at: datetime | None
    completed_at: datetime | None
    skip: int
    limit: int


class DetectionSummary(msgspec.Struct, kw_only=True):
    by_class: dict[str, int]
    by_confidence: dict[str, int]
    with_screenshots: int


class VideoDetectionsOut(msgspec.Struct, kw_only=True):
    video_id: UUID
    total_detections: int
    detections: list[DetectionOut]
    detection_summary: DetectionSummary
    test_sessions: list[UUID]
    message: str
    skip: int
    limit: int


def detection_out(d: read.DetectionRow, outcome: str | None = None) -> DetectionOut:
    box = None if d.box is None else BoxOut(x=d.box[0], y=d.box[1], width=d.box[2], height=d.box[3])
    return DetectionOut(
        id=d.id,
        detection_id=d.id,
        test_session_id=d.session_id,
        timestamp=d.timestamp,
        frame_number=d.frame_number,
        confidence=d.confidence,
        class_label=d.class_label,
        vru_type=d.class_label,
        bounding_box=box,
        track_id=d.track_id,
        device_id=d.device_id,
        seq=d.seq,
        model_version=d.model_version,
        captured_at=d.captured_at,
        received_at=d.received_at,
        created_at=d.received_at,
        validation_result=outcome,
    )


async def _with_outcomes(
    services: Services, session_ids: list[UUID], rows: list[read.DetectionRow]
) -> list[DetectionOut]:
    async with services.read_pool.connection() as conn:
        outcomes = await detection_outcomes(conn, session_ids, [r.id for r in rows])
    return [detection_out(r, outcomes.get(r.id)) for r in rows]


_WIRE_PATH = re.compile(r"at `\$\.([^`]*)`")
_T7_NAMES = {
    "box": "bounding_box",
    "classLabel": "class_label",
    "trackId": "track_id",
    "frameNumber": "frame_number",
    "modelVersion": "model_version",
    "deviceId": "device_id",
}


def _t7_field(detail: str) -> str | None:
    """T7's name for the wire path a decoder message names (`detections[0].box.x` ->
    `bounding_box.x`): the one detection's fields sit at the top of T7's body."""
    found = _WIRE_PATH.search(detail)
    if found is None:
        return None
    parts = found.group(1).split(".")
    if parts[0].startswith("detections[") and len(parts) > 1:
        parts = parts[1:]
    return ".".join(_T7_NAMES.get(p, p) for p in parts)


def _message_from_event(data: DetectionEventIn, device: str = HTTP_DEVICE) -> FrameMessage:
    """T7's single detection as a one-object frame; the original's messages for bad values."""
    if data.timestamp < 0:
        raise InputError("Timestamp must be non-negative", "timestamp", status_code=400)
    if data.confidence is not None and not 0.0 <= data.confidence <= 1.0:
        raise InputError("Confidence must be between 0 and 1", "confidence", status_code=400)
    label = data.class_label or data.vru_type or VruType.PEDESTRIAN
    box = data.bounding_box
    detection: dict[str, Any] = {"classLabel": label, "confidence": data.confidence}
    if box is not None:
        detection["box"] = msgspec.structs.asdict(box)
    if data.track_id:  # the original's clients send "" for no track
        detection["trackId"] = data.track_id
    raw = {
        "deviceId": data.device_id or device,
        "sessionId": str(data.test_session_id),
        "seq": 0,
        "timestamp": data.timestamp,
        "frameNumber": data.frame_number,
        "modelVersion": data.model_version or None,
        "detections": [detection],
    }
    try:
        return decode_frame(msgspec.json.encode(raw))
    except InvalidMessage as err:
        raise InputError(err.detail, _t7_field(err.detail), status_code=400) from None


def _raise_rejection(rejection: Rejection, box_field: str | None = None) -> None:
    if rejection.reason == "unknown_session":
        raise NotFound("Test session", rejection.detail, "Test session not found")
    if rejection.reason == "invalid":
        field = box_field or rejection.field
        raise InputError(f"{field}: {rejection.detail}", field, status_code=422)
    raise Conflict(rejection.detail)


DETECTION_READ_MODELS = frozenset({"detections_v1", "test_sessions_v1"})
"""What a device's POST changes."""


async def _record(
    services: Services,
    request: Request[Any, Any, Any],
    message: FrameMessage,
    fid: UUID,
    box_field: str | None = None,
) -> FrameOutcome:
    """Store one frame with the posts around it (api/group_commit.py), answered once durable.

    The answer reads no read model, so it does not wait for them (that wait was most of a
    device's round trip, and with a fixed number of connections it capped their rate); reads
    wait instead (`detections_visible`)."""
    who = principal(request)
    if who.kind is PrincipalKind.DEVICE and message.device_id != who.name:
        raise PermissionDeniedException(
            detail=f"deviceId: the token of device {who.name!r} publishes only its own frames"
        )
    outcome = await services.frames.submit(message, fid, meta_of(request))
    if outcome.rejection is not None:
        _raise_rejection(outcome.rejection, box_field)
    return outcome


async def detections_visible(request: Request[Any, Any, Any]) -> None:
    """Before every GET of the API: wait (bounded) until the read models hold every detection
    posted so far, so a GET after a POST sees it, as when the POST itself waited. Free while
    no post is ahead of the read models; after the bound, or while those read models fail,
    the GET reads what there is."""
    if request.method != "GET" or not request.url.path.startswith("/api/"):
        return
    services = services_of(request.app.state)
    if services.read_side.errors().keys() & DETECTION_READ_MODELS:
        return
    with contextlib.suppress(ReadSideTimeout):
        await caught_up(
            services, services.frames.position or None, "detections_v1", "test_sessions_v1"
        )


class DetectionsController(Controller):
    tags = ["detections"]

    @post(
        "/api/detection-events",
        operation_id="createDetectionEvent",
        summary="Record one detection (T7); 400 on a negative timestamp or confidence outside 0-1",
        status_code=200,
    )
    async def create_detection_event(
        self, state: State, request: Request[Any, Any, Any]
    ) -> DetectionEventOut:
        data = decode_input(await request.body(), DetectionEventIn)
        who = principal(request)
        message = _message_from_event(
            data, who.name if who.kind is PrincipalKind.DEVICE else HTTP_DEVICE
        )
        fid = uuid4()  # one POST is one detection: no sequence number to deduplicate on
        await _record(services_of(state), request, message, fid, box_field="bounding_box")
        return DetectionEventOut(
            detection_id=detection_id(fid, 0), validation_result=None, status="processed"
        )

    @post(
        "/api/detection-events/batch",
        operation_id="createDetectionFrame",
        summary="Record one frame message in the device wire format (see `verity device-schema`)",
        status_code=200,
    )
    async def create_frame(self, state: State, request: Request[Any, Any, Any]) -> FrameStoredOut:
        body = await request.body()
        if not body.strip():
            raise InputError("Request body is empty; a frame message was expected", status_code=400)
        try:
            message = decode_frame(body)
        except InvalidMessage as err:
            status = 400 if err.reason == "undecodable" else 422
            raise InputError(err.detail, status_code=status) from None
        fid = frame_id(message.device_id, message.session_id, message.seq)
        outcome = await _record(services_of(state), request, message, fid)
        return FrameStoredOut(
            frame_id=fid,
            status=outcome.status,
            detection_ids=[detection_id(fid, i) for i in range(len(message.detections))],
        )

    @get(
        "/api/test-sessions/{session_id:uuid}/detections",
        operation_id="listSessionDetections",
        summary="Detections of a test session in video order, paginated (T5)",
    )
    async def session_detections(
        self,
        state: State,
        session_id: FromPath[UUID],
        skip: SkipQuery = 0,
        limit: Annotated[int, Parameter(ge=1, le=100_000)] = 10_000,
    ) -> SessionDetectionsOut:
        services = services_of(state)
        session = await load_session(services, session_id)
        rows = await read.session_detections(services.read_pool, session_id, skip, limit)
        return SessionDetectionsOut(
            test_session_id=session.id,
            test_session_name=session.name,
            video_id=session.video_id,
            total_detections=session.detection_count,
            detections=await _with_outcomes(services, [session_id], rows),
            session_status=session.status,
            started_at=session.started_at,
            completed_at=session.completed_at,
            skip=skip,
            limit=limit,
        )

    @get(
        "/api/videos/{video_id:uuid}/detections",
        operation_id="listVideoDetections",
        summary="Detections of every test session run on a video, paginated (T6)",
    )
    async def video_detections(
        self,
        state: State,
        video_id: FromPath[UUID],
        skip: SkipQuery = 0,
        limit: Annotated[int, Parameter(ge=1, le=100_000)] = 10_000,
    ) -> VideoDetectionsOut:
        services = services_of(state)
        async with services.read_pool.connection() as conn:
            if await get_video(conn, video_id) is None:
                raise NotFound("Video", video_id, "Video not found")
        sessions = await read.sessions_of_video(services.read_pool, video_id)
        rows = await read.video_detections(services.read_pool, video_id, skip, limit)
        by_class: dict[str, int] = {}
        for s in sessions:
            for label, n in s.class_counts.items():
                by_class[label] = by_class.get(label, 0) + n
        bands = await read.confidence_bands(services.read_pool, [s.id for s in sessions])
        total = sum(s.detection_count for s in sessions)
        return VideoDetectionsOut(
            video_id=video_id,
            total_detections=total,
            detections=await _with_outcomes(services, [s.id for s in sessions], rows),
            detection_summary=DetectionSummary(
                by_class=by_class, by_confidence=bands, with_screenshots=0
            ),
            test_sessions=[s.id for s in sessions],
            message=f"{total} detections from {len(sessions)} test sessions",
            skip=skip,
            limit=limit,
        )
