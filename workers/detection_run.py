"""One detection run, executed: frames in batches -> detector -> VRU classes -> stored.

Runs in a thread of its own (the worker's event loop keeps the JetStream message alive
meanwhile). Decoding overlaps inference (`read_frames` decodes in its own thread); each batch is
stored through the run's commands, which load the run first, so a cancel is seen at the next
batch and nothing is stored after it. Progress is recorded at most every `progress_every`
seconds; a worker that dies between two progress events leaves frames stored after the last
one, which the next worker stores again under the same ids (nothing doubled).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import msgspec

from commands.application import Verity
from commands.detection_runs import (
    Finish,
    Found,
    FrameResult,
    Progress,
    RunState,
    StartRun,
    StoreBatch,
    finish_run,
    start_run,
    store_batch,
)
from commands.detections import FrameRecorder
from commands.detector_models import load_model
from domain.detection_runs import RunMode, RunStatus
from domain.videos import Video
from domain.vru import VruType
from workers.inference.api import (
    Detector,
    DetectorParams,
    FramePacket,
    RawDetection,
    VideoDecodeError,
)

log = logging.getLogger(__name__)

OpenDetector = Callable[[Path, DetectorParams], Detector]
ReadFrames = Callable[..., Iterable[list[FramePacket]]]
Report = Callable[[RunState, float | None], None]
"""Called after each recorded progress (and at the end): the run, its frames per second."""


@dataclass
class Outcome:
    status: RunStatus | None
    """None: stopped before the end (worker shutting down); the run stays `running`."""
    frames_done: int = 0
    detections: int = 0


def map_detections(
    raw: Sequence[RawDetection],
    class_map: Mapping[str, VruType],
    targets: frozenset[str],
    frame_size: tuple[int, int] | None,
) -> tuple[Found, ...]:
    """Detections of a mapped (and targeted) class, clipped to the frame, empty boxes dropped."""
    found = []
    for d in raw:
        vru = class_map.get(d.class_name)
        if vru is None or (targets and vru.value not in targets):
            continue
        x1, y1, x2, y2 = d.x, d.y, d.x + d.width, d.y + d.height
        x1, y1 = max(x1, 0.0), max(y1, 0.0)
        if frame_size is not None:
            x2, y2 = min(x2, float(frame_size[0])), min(y2, float(frame_size[1]))
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            continue
        confidence = min(max(float(d.confidence), 0.0), 1.0)
        found.append(
            Found(
                vru_type=vru,
                confidence=confidence,
                x=x1,
                y=y1,
                width=x2 - x1,
                height=y2 - y1,
                track_id=d.track_id,
            )
        )
    return tuple(found)


class RunExecutor:
    """Executes runs for one worker; `stop` ends a run between batches, unfinished."""

    def __init__(
        self,
        app: Verity,
        *,
        record: FrameRecorder,
        worker: str,
        models_dir: Path,
        uploads_dir: Path,
        open_detector: OpenDetector,
        read_frames: ReadFrames,
        progress_every: float = 0.5,
    ) -> None:
        self.app = app
        self.record = record
        """Test-session mode stores through the devices' exactly-once path with this."""
        self.worker = worker
        self.models_dir = models_dir
        self.uploads_dir = uploads_dir
        self.open_detector = open_detector
        self.read_frames = read_frames
        self.progress_every = progress_every

    def perform(self, run_id: UUID, stop: threading.Event, report: Report) -> Outcome:
        state = start_run(StartRun(id=run_id, worker=self.worker), self.app)
        if state.status != RunStatus.RUNNING:
            return Outcome(state.status, state.frames_done, state.detections)
        current = state.next_frame
        try:
            return self._frames(state, stop, report)
        except VideoDecodeError as err:
            return self._finish(state, RunStatus.FAILED, str(err), err.frame_number)
        except Exception as err:  # the detector or the video: the run fails, saying why
            log.exception("detection run %s failed", run_id)
            return self._finish(state, RunStatus.FAILED, f"{type(err).__name__}: {err}", current)

    def _finish(
        self, state: RunState, status: RunStatus, reason: str = "", frame: int | None = None
    ) -> Outcome:
        cmd = Finish(
            run_id=state.id,
            status=status,
            frames_done=state.frames_done,
            detections=state.detections,
            reason=reason,
            frame=frame,
        )
        finish_run(cmd, self.app)
        return Outcome(status, state.frames_done, state.detections)

    def _frames(self, state: RunState, stop: threading.Event, report: Report) -> Outcome:
        model = load_model(self.app, state.model_id)
        video = self.app.load(Video, state.video_id)
        meta = video.metadata
        size = (meta.width, meta.height) if meta is not None and meta.width > 0 else None
        p = state.parameters
        imgsz = model.inspection.input_size if model.inspection is not None else 640
        detector = self.open_detector(
            self.models_dir / model.filename,
            DetectorParams(
                confidence=p.confidence,
                iou=p.nms_iou,
                imgsz=imgsz,
                batch_size=p.batch_size,
                device=p.device,
                tracking=p.tracking,
            ),
        )
        targets = frozenset(p.target_classes)
        done, detections = state.frames_done, state.detections
        started, recorded = time.monotonic(), time.monotonic()
        frames_at_start = done
        try:
            batches = self.read_frames(
                self.uploads_dir / video.filename,
                start=state.next_frame,
                stride=p.frame_stride,
                batch_size=p.batch_size,
            )
            for batch in batches:
                if stop.is_set():
                    return Outcome(None, done, detections)
                numbers = [packet.frame_number for packet in batch]
                raw = detector.detect([packet.image for packet in batch], frame_numbers=numbers)
                results = tuple(
                    FrameResult(
                        frame_number=packet.frame_number,
                        timestamp=packet.timestamp_s,
                        found=map_detections(dets, model.class_map, targets, size),
                    )
                    for packet, dets in zip(batch, raw, strict=True)
                )
                done += len(results)
                detections += sum(len(r.found) for r in results)
                now = time.monotonic()
                rate = (done - frames_at_start) / max(now - started, 1e-6)
                progress = None
                if now - recorded >= self.progress_every:
                    recorded = now
                    progress = Progress(
                        next_frame=numbers[-1] + p.frame_stride,
                        frames_done=done,
                        detections=detections,
                        frames_per_second=round(rate, 3),
                    )
                state = store_batch(
                    StoreBatch(
                        run_id=state.id,
                        frames=results,
                        received_at=datetime.now(UTC),
                        progress=progress,
                    ),
                    self.app,
                    self.record,
                )
                if state.status != RunStatus.RUNNING:
                    return Outcome(state.status, done, detections)
                if progress is not None:
                    report(state, rate)
        finally:
            detector.close()
        outcome = self._finish(_with_counts(state, done, detections), RunStatus.COMPLETED)
        report(_with_counts(state, done, detections, RunStatus.COMPLETED), None)
        return outcome


def _with_counts(
    state: RunState, done: int, detections: int, status: RunStatus | None = None
) -> RunState:
    return msgspec.structs.replace(
        state, frames_done=done, detections=detections, status=status or state.status
    )


def in_ground_truth_mode(state: RunState) -> bool:
    return state.mode == RunMode.GROUND_TRUTH
