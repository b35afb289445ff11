"""Contract L6: a video's quality assessment, as the video worker recorded it."""

from __future__ import annotations

from uuid import UUID

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import FromPath

from api.services import services_of
from domain.errors import NotFound
from domain.video_quality import QualityAssessment, QualitySeries, QualityThresholds
from projections.videos import VideoQuality, video_quality


class BrightnessAnalysis(msgspec.Struct, kw_only=True, rename="camel"):
    mean: float
    min: float
    max: float
    contrast: float
    clipped_dark: float
    clipped_bright: float
    dark: bool
    overexposed: bool
    low_contrast: bool


class NoiseAnalysis(msgspec.Struct, kw_only=True, rename="camel"):
    sigma: float
    noisy: bool


class SharpnessAnalysis(msgspec.Struct, kw_only=True, rename="camel"):
    laplacian_variance: float
    blurry: bool


class QualityOut(msgspec.Struct, kw_only=True):
    """L6's snake_case keys with the camelCase twins the frontend's type reads; while the
    video is not assessed (202) or failed, the figures are null and `status` says why."""

    video_id: UUID
    videoId: UUID  # noqa: N815 - camel twin the frontend reads
    status: str
    """The video's processing status: pending, processing, completed or failed."""
    reason: str | None
    """Why processing failed."""
    quality_score: float | None
    qualityScore: float | None  # noqa: N815
    resolution_quality: str | None
    resolutionQuality: str | None  # noqa: N815
    frame_rate_quality: str | None
    frameRateQuality: str | None  # noqa: N815
    brightness_analysis: BrightnessAnalysis | None
    brightnessAnalysis: BrightnessAnalysis | None  # noqa: N815
    noise_analysis: NoiseAnalysis | None
    noiseAnalysis: NoiseAnalysis | None  # noqa: N815
    sharpness_analysis: SharpnessAnalysis | None
    sharpnessAnalysis: SharpnessAnalysis | None  # noqa: N815
    flags: list[str]
    components: dict[str, float]
    samples: int
    samples_failed: int
    series: QualitySeries | None
    thresholds: QualityThresholds | None
    method_version: int | None
    assessment_seconds: float | None


def _out(q: VideoQuality, a: QualityAssessment | None) -> QualityOut:
    flags = set(a.flags) if a else set()
    bright = (
        None
        if a is None
        else BrightnessAnalysis(
            mean=a.brightness,
            min=a.brightness_min,
            max=a.brightness_max,
            contrast=a.contrast,
            clipped_dark=a.clipped_dark,
            clipped_bright=a.clipped_bright,
            dark="dark" in flags,
            overexposed="overexposed" in flags,
            low_contrast="low_contrast" in flags,
        )
    )
    noise = None if a is None else NoiseAnalysis(sigma=a.noise, noisy="noisy" in flags)
    sharp = (
        None
        if a is None
        else SharpnessAnalysis(laplacian_variance=a.sharpness, blurry="blurry" in flags)
    )
    return QualityOut(
        video_id=q.id,
        videoId=q.id,
        status=q.processing_status,
        reason=q.processing_error,
        quality_score=a.score if a else None,
        qualityScore=a.score if a else None,
        resolution_quality=a.resolution_quality if a else None,
        resolutionQuality=a.resolution_quality if a else None,
        frame_rate_quality=a.frame_rate_quality if a else None,
        frameRateQuality=a.frame_rate_quality if a else None,
        brightness_analysis=bright,
        brightnessAnalysis=bright,
        noise_analysis=noise,
        noiseAnalysis=noise,
        sharpness_analysis=sharp,
        sharpnessAnalysis=sharp,
        flags=sorted(flags),
        components=dict(a.components) if a else {},
        samples=a.samples if a else 0,
        samples_failed=a.samples_failed if a else 0,
        series=a.series if a else None,
        thresholds=a.thresholds if a else None,
        method_version=a.method_version if a else None,
        assessment_seconds=a.seconds if a else None,
    )


class VideoQualityController(Controller):
    tags = ["videos"]

    @get(
        "/api/video-library/quality-assessment/{video_id:uuid}",
        operation_id="getVideoQuality",
        summary="A video's quality assessment (L6); 202 while it is not assessed yet",
        responses={
            202: ResponseSpec(QualityOut, description="Not assessed yet: `status` says where"),
            404: ResponseSpec(None, description="No such video"),
        },
    )
    async def quality(self, state: State, video_id: FromPath[UUID]) -> Response[QualityOut]:
        services = services_of(state)
        async with services.read_pool.connection() as conn:
            found = await video_quality(conn, video_id)
        if found is None:
            raise NotFound("Video", video_id, f"videoId: video {video_id} not found")
        pending = found.processing_status in ("pending", "processing")
        return Response(_out(found, found.assessment), status_code=202 if pending else 200)
