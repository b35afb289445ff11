"""A simulated camera: publishes realistic frame messages for a test session over NATS.

With ground truth for the session's video (boxed annotations in the read model) it reports
those boxes with pixel noise, misses some and adds the odd false positive; otherwise it invents a
few pedestrians and cyclists crossing a 1920x1080 frame.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import msgspec
import psycopg
from nats.aio.client import Client as NatsClient

from commands.device_messages import BoxIn, DetectionIn, FrameMessage
from domain.vru import VRU_CLASSES, VruType
from projections.annotations import boxes_of_session_video

WIDTH, HEIGHT = 1920.0, 1080.0
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class TruthBox:
    timestamp: float
    label: str
    box: tuple[float, float, float, float]
    track: str | None


@dataclass(frozen=True)
class Behaviour:
    miss_rate: float = 0.1
    false_positive_rate: float = 0.05
    jitter_px: float = 4.0
    model_version: str = "simulated-1"


def load_ground_truth(database_url: str, session_id: UUID) -> list[TruthBox]:
    """The session's video's live annotations with boxes, or [] when there are none (yet)."""
    with psycopg.connect(database_url) as conn:
        boxes = boxes_of_session_video(conn, session_id)
    return [
        TruthBox(b.timestamp, b.vru_type, (b.x, b.y, b.width, b.height), b.detection_id)
        for b in boxes
    ]


def _noisy(box: tuple[float, float, float, float], rng: random.Random, px: float) -> BoxIn:
    x, y, w, h = box
    return BoxIn(
        x=x + rng.gauss(0, px),
        y=y + rng.gauss(0, px),
        width=max(1.0, w + rng.gauss(0, px)),
        height=max(1.0, h + rng.gauss(0, px)),
    )


def _synthetic(t: float, n: int = 3) -> list[TruthBox]:
    """`n` objects crossing the frame at different speeds, each on its own track."""
    out = []
    for k in range(n):
        speed = 80.0 + 40.0 * k
        x = (100.0 + 300.0 * k + speed * t) % (WIDTH - 120.0)
        label = VruType.CYCLIST if k == 1 else VruType.PEDESTRIAN
        out.append(TruthBox(t, label, (x, 400.0 + 60.0 * k, 60.0, 160.0), str(k + 1)))
    return out


def frames(
    session_id: UUID,
    device_id: str,
    fps: float,
    duration: float,
    truth: list[TruthBox],
    behaviour: Behaviour = Behaviour(),
    seed: int = 7,
) -> Iterator[FrameMessage]:
    """The frame messages a device would send for `duration` seconds at `fps`."""
    rng = random.Random(seed)  # noqa: S311 - simulation, not security
    by_frame: dict[int, list[TruthBox]] = {}
    for obj in truth:
        by_frame.setdefault(round(obj.timestamp * fps), []).append(obj)
    for seq in range(int(fps * duration)):
        t = seq / fps
        seen = by_frame.get(seq, []) if truth else _synthetic(t)
        detections = [
            DetectionIn(
                class_label=obj.label,
                confidence=round(rng.uniform(0.55, 0.99), 3),
                box=_noisy(obj.box, rng, behaviour.jitter_px),
                track_id=obj.track,
            )
            for obj in seen
            if rng.random() >= behaviour.miss_rate
        ]
        if rng.random() < behaviour.false_positive_rate:
            detections.append(
                DetectionIn(
                    class_label=rng.choice(VRU_CLASSES[:3]),
                    confidence=round(rng.uniform(0.3, 0.6), 3),
                    box=BoxIn(
                        x=rng.uniform(0, WIDTH - 80),
                        y=rng.uniform(0, HEIGHT - 160),
                        width=80,
                        height=160,
                    ),
                )
            )
        yield FrameMessage(
            device_id=device_id,
            session_id=session_id,
            seq=seq,
            frame_number=seq,
            timestamp=round(t, 6),
            model_version=behaviour.model_version,
            detections=detections,
        )


async def publish(
    nc: NatsClient,
    subject_prefix: str,
    messages: Iterator[FrameMessage],
    fps: float,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Publish paced at `fps` (0: as fast as JetStream acks); returns how many went out."""
    js = nc.jetstream()
    start = time.monotonic()
    acks = []
    sent = 0
    for message in messages:
        if fps > 0:
            delay = start + message.seq / fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        message.captured_at = datetime.now(UTC)
        acks.append(
            await js.publish_async(
                f"{subject_prefix}.{message.session_id}",
                _encoder.encode(message),
                headers={"Nats-Msg-Id": message.msg_id},
            )
        )
        sent += 1
        if len(acks) >= 256:
            await asyncio.gather(*acks)
            acks.clear()
            if progress is not None:
                progress(256)
    await asyncio.gather(*acks)
    if progress is not None and sent % 256:
        progress(sent % 256)
    return sent
