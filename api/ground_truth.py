"""GET /api/videos/{id}/ground-truth (contract 3.4): validated annotations plus detector
candidates, in the original's snake_case shape with camelCase twins for the frontend."""

from __future__ import annotations

from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import FromPath

from api.annotations import load_video
from api.services import services_of
from domain.annotations import Source
from projections import annotations as read


class GroundTruthBox(msgspec.Struct, kw_only=True):
    x: float
    y: float
    width: float
    height: float
    confidence: float | None


class GroundTruthObject(msgspec.Struct, kw_only=True):
    id: UUID
    timestamp: float
    class_label: str
    vru_type: str
    vruType: str  # noqa: N815 - camel twin the frontend reads
    confidence: float | None
    bounding_box: GroundTruthBox | None
    boundingBox: GroundTruthBox | None  # noqa: N815
    frame_number: int
    frameNumber: int  # noqa: N815
    detection_id: str | None
    detectionId: str | None  # noqa: N815
    validated: bool
    difficult: bool
    occluded: bool
    truncated: bool
    source: str
    version: int


class GroundTruthOut(msgspec.Struct, kw_only=True):
    video_id: UUID
    videoId: UUID  # noqa: N815
    objects: list[GroundTruthObject]
    total_detections: int
    totalDetections: int  # noqa: N815
    status: str
    message: str


def _object(row: read.AnnotationRow) -> GroundTruthObject:
    box = row.box
    gt_box = (
        None
        if box is None
        else GroundTruthBox(
            x=box.x, y=box.y, width=box.width, height=box.height, confidence=row.confidence
        )
    )
    return GroundTruthObject(
        id=row.id,
        timestamp=row.timestamp,
        class_label=row.vru_type,
        vru_type=row.vru_type,
        vruType=row.vru_type,
        confidence=row.confidence,
        bounding_box=gt_box,
        boundingBox=gt_box,
        frame_number=row.frame_number,
        frameNumber=row.frame_number,
        detection_id=row.detection_id,
        detectionId=row.detection_id,
        validated=row.validated,
        difficult=row.difficult,
        occluded=row.occluded,
        truncated=row.truncated,
        source=row.source,
        version=row.version,
    )


class GroundTruthController(Controller):
    tags = ["annotations"]

    @get(
        "/api/videos/{video_id:uuid}/ground-truth",
        operation_id="getGroundTruth",
        summary="Validated annotations plus detector candidates of a video (3.4)",
    )
    async def ground_truth(self, state: State, video_id: FromPath[UUID]) -> GroundTruthOut:
        services = services_of(state)
        await load_video(services, video_id)
        async with services.read_pool.connection() as conn:
            rows = await read.annotations_of_video(conn, video_id)
        chosen = [r for r in rows if r.validated or r.source == Source.DETECTOR.value]
        objects = [_object(r) for r in chosen]
        validated = sum(1 for r in chosen if r.validated)
        message = (
            f"{validated} validated annotations and {len(chosen) - validated} detector "
            "candidates awaiting review"
        )
        return GroundTruthOut(
            video_id=video_id,
            videoId=video_id,
            objects=objects,
            total_detections=len(objects),
            totalDetections=len(objects),
            status="completed" if objects else "pending",
            message=message,
        )
