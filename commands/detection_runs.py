"""Write side of detection runs: request, start, store a batch of results, finish, cancel.

Results are stored where a device's or a person's would be. Test-session mode goes through
`record_frames`, the devices' exactly-once path (device `model-<run id>`, seq = frame number);
ground-truth mode creates candidate annotations with ids derived from run, frame and index. A
worker that stored frames and died before recording progress stores them again after a
restart: the ids are the same, so nothing is doubled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID, uuid4

import msgspec

from commands.application import Position, Verity
from commands.detections import FrameRecorder, RecordFrames
from commands.detector_models import load_model
from commands.device_messages import BoxIn, DetectionIn, FrameMessage
from domain.annotations import Annotation, AnnotationDraft, BoundingBox, Source, check_draft
from domain.detection_runs import (
    DetectionRun,
    RunMode,
    RunParameters,
    RunStatus,
    candidate_id,
    device_id_of,
    track_key,
)
from domain.errors import ConcurrentModification, Conflict, InvalidValue, NotFound
from domain.test_sessions import SessionStatus, TestSession
from domain.videos import Video
from domain.vru import VruType, vru_type_of


class RequestRun(msgspec.Struct, frozen=True, kw_only=True):
    model_id: UUID
    video_id: UUID
    mode: RunMode
    parameters: RunParameters = RunParameters()
    session_id: UUID | None = None
    """Test-session mode: the session to feed; None creates (and starts) one."""
    id: UUID = msgspec.field(default_factory=uuid4)


class StartRun(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    worker: str


class Found(msgspec.Struct, frozen=True, kw_only=True):
    """One detection already mapped to a VRU class, in pixels clipped to the frame."""

    vru_type: VruType
    confidence: float
    x: float
    y: float
    width: float
    height: float
    track_id: int | None = None


class FrameResult(msgspec.Struct, frozen=True, kw_only=True):
    frame_number: int
    timestamp: float
    found: tuple[Found, ...] = ()


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    next_frame: int
    frames_done: int
    detections: int
    frames_per_second: float


class StoreBatch(msgspec.Struct, frozen=True, kw_only=True):
    run_id: UUID
    frames: tuple[FrameResult, ...]
    received_at: datetime
    progress: Progress | None = None


class Finish(msgspec.Struct, frozen=True, kw_only=True):
    run_id: UUID
    status: RunStatus
    """COMPLETED or FAILED."""
    frames_done: int = 0
    detections: int = 0
    reason: str = ""
    frame: int | None = None


class CancelRun(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    reason: str = "cancelled on request"


class RunState(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker needs of a run it takes."""

    id: UUID
    status: RunStatus
    model_id: UUID
    video_id: UUID
    mode: RunMode
    parameters: RunParameters
    session_id: UUID | None
    next_frame: int
    frames_done: int
    detections: int
    total_frames: int


def load_run(app: Verity, run_id: UUID) -> DetectionRun:
    try:
        return app.load(DetectionRun, run_id, "Detection run")
    except NotFound:
        raise NotFound("Detection run", run_id, f"Detection run {run_id} not found") from None


def state_of(run: DetectionRun) -> RunState:
    return RunState(
        id=run.id,
        status=run.status,
        model_id=run.model_id,
        video_id=run.video_id,
        mode=run.mode,
        parameters=run.parameters,
        session_id=run.session_id,
        next_frame=run.next_frame,
        frames_done=run.frames_done,
        detections=run.detections,
        total_frames=run.total_frames,
    )


def _load_video(app: Verity, video_id: UUID) -> Video:
    try:
        video = app.load(Video, video_id)
    except NotFound:
        raise NotFound("Video", video_id, f"Video {video_id} not found") from None
    video.ensure_exists()
    return video


def _session_for(app: Verity, cmd: RequestRun, video: Video, name: str) -> TestSession:
    if cmd.session_id is None:
        created: TestSession = TestSession._create(
            TestSession.Created,
            name=f"{name} on {video.original_name}"[:200],
            project_id=video.project_id,
            video_id=video.id,
            device_id=device_id_of(cmd.id),
            description=f"Detection run {cmd.id}",
        )
        created.start()
        return created
    try:
        session = app.load(TestSession, cmd.session_id, "Test session")
    except NotFound:
        msg = f"Test session {cmd.session_id} not found"
        raise NotFound("Test session", cmd.session_id, msg) from None
    if session.video_id != video.id:
        msg = f"sessionId: test session {session.id} runs on video {session.video_id}"
        raise InvalidValue("sessionId", msg)
    if not session.accepts_detections:
        raise Conflict(f"Test session {session.id} is {session.status.value}; it takes no more")
    if session.status is SessionStatus.PENDING:
        session.start()
    return session


def request_run(cmd: RequestRun, app: Verity) -> Position | None:
    """The run (and in test-session mode its session), stored together; a worker takes it."""
    for i, label in enumerate(cmd.parameters.target_classes):
        vru_type_of(label, f"targetClasses[{i}]")
    model = load_model(app, cmd.model_id)
    video = _load_video(app, cmd.video_id)
    model.ensure_ready()
    meta = video.metadata
    total = meta.frame_count if meta is not None and meta.frame_count > 0 else 0
    session = (
        _session_for(app, cmd, video, model.name) if cmd.mode == RunMode.TEST_SESSION else None
    )
    run = DetectionRun._create(
        DetectionRun.Requested,
        id=cmd.id,
        model_id=model.id,
        model_name=model.name,
        video_id=video.id,
        mode=cmd.mode,
        parameters=cmd.parameters,
        total_frames=total,
        session_id=session.id if session is not None else None,
    )
    return app.commit(run, *([session] if session is not None else []))


def start_run(cmd: StartRun, app: Verity) -> RunState:
    """The run, taken by `worker` (again after a crash); a finished run is returned as it is."""
    run = load_run(app, cmd.id)
    if not run.finished:
        run.start(cmd.worker[:128])
        app.commit(run)
    return state_of(run)


def _drafts(run: DetectionRun, frames: Sequence[FrameResult]) -> list[tuple[UUID, AnnotationDraft]]:
    out = []
    for frame in frames:
        for index, f in enumerate(frame.found):
            draft = AnnotationDraft(
                frame_number=frame.frame_number,
                timestamp=frame.timestamp,
                vru_type=f.vru_type,
                box=BoundingBox(f.x, f.y, f.width, f.height),
                source=Source.DETECTOR,
                confidence=f.confidence,
                detection_id=None if f.track_id is None else track_key(run.id, f.track_id),
                notes=f"detection run {run.id} ({run.model_name})",
            )
            out.append((candidate_id(run.id, frame.frame_number, index), draft))
    return out


def _store_candidates(
    app: Verity, cmd: StoreBatch, run: DetectionRun
) -> tuple[Position | None, DetectionRun]:
    video = _load_video(app, run.video_id)
    m = video.metadata
    size = (m.width, m.height) if m is not None and m.width > 0 and m.height > 0 else None
    drafts = _drafts(run, cmd.frames)
    for _, draft in drafts:
        check_draft(draft, size)
    for attempt in range(2):
        if cmd.progress is not None:
            p = cmd.progress
            run.progress(p.next_frame, p.frames_done, p.detections, p.frames_per_second)
        created = [Annotation.create(run.video_id, d, ident) for ident, d in drafts]
        try:
            return app.commit(run, *created), run
        except ConcurrentModification:
            # stored before by a crashed worker (or the run changed): keep only what is new
            run = load_run(app, cmd.run_id)
            if run.finished:
                return None, run
            if attempt:
                raise
            drafts = [(i, d) for i, d in drafts if not app.exists(i)]
    raise AssertionError("unreachable")


def _frame_message(run: DetectionRun, frame: FrameResult) -> FrameMessage:
    assert run.session_id is not None
    return FrameMessage(
        device_id=device_id_of(run.id),
        session_id=run.session_id,
        seq=frame.frame_number,
        timestamp=frame.timestamp,
        frame_number=frame.frame_number,
        model_version=run.model_name[:128],
        detections=[
            DetectionIn(
                class_label=f.vru_type.value,
                confidence=f.confidence,
                box=BoxIn(x=f.x, y=f.y, width=f.width, height=f.height),
                track_id=None if f.track_id is None else str(f.track_id),
            )
            for f in frame.found
        ],
    )


def store_batch(cmd: StoreBatch, app: Verity, record: FrameRecorder) -> RunState:
    """Store one batch of a run's results (and its progress); the run as it stands after.

    A run no longer running (cancelled meanwhile) stores nothing: the caller stops."""
    run = load_run(app, cmd.run_id)
    if run.status != RunStatus.RUNNING:
        return state_of(run)
    if run.mode == RunMode.GROUND_TRUTH:
        _, run = _store_candidates(app, cmd, run)
        return state_of(run)
    messages = tuple(_frame_message(run, f) for f in cmd.frames)
    result = record(RecordFrames(frames=messages, received_at=cmd.received_at), app)
    if result.rejected:
        first = result.rejected[0]
        if first.reason == "session_closed":  # cancelled: its session was closed with it
            return state_of(load_run(app, cmd.run_id))
        raise Conflict(f"frame {messages[first.index].frame_number}: {first.detail}")
    if cmd.progress is not None:
        p = cmd.progress
        run.progress(p.next_frame, p.frames_done, p.detections, p.frames_per_second)
        try:
            app.commit(run)
        except ConcurrentModification:
            run = load_run(app, cmd.run_id)
    return state_of(run)


def _session_of(app: Verity, run: DetectionRun) -> TestSession | None:
    if run.session_id is None:
        return None
    session = app.load(TestSession, run.session_id, "Test session")
    return session if session.accepts_detections else None


def finish_run(cmd: Finish, app: Verity) -> Position | None:
    """Completed (its session completes: the evaluation follows) or failed (so does it)."""
    run = load_run(app, cmd.run_id)
    session = _session_of(app, run)
    if cmd.status == RunStatus.COMPLETED:
        run.complete(cmd.frames_done, cmd.detections)
        if session is not None:
            session.complete()
    else:
        reason = cmd.reason[:2000] or "the detector failed"
        run.fail(reason, cmd.frame)
        if session is not None:
            session.fail(f"detection run {run.id} failed: {reason}"[:2000])
    return app.commit(run, *([session] if session is not None else []))


def cancel_run(cmd: CancelRun, app: Verity) -> Position | None:
    """Cancelled; its session (test-session mode) fails, so not one more frame is taken."""
    run = load_run(app, cmd.id)
    run.cancel(cmd.reason[:2000])
    session = _session_of(app, run)
    if session is not None:
        session.fail(f"detection run {run.id} cancelled")
    return app.commit(run, *([session] if session is not None else []))


def planned_frames(total_frames: int, stride: int) -> int:
    """Frames a run with `stride` processes of a `total_frames` video."""
    return math.ceil(total_frames / max(stride, 1)) if total_frames > 0 else 0
