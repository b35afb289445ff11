"""Benchmark of the video worker's quality assessment on a 10-minute 1080p video (target < 10 s).

    uv run python bench/bench_video_quality.py [--minutes 10] [--fps 5] [--runs 3]
        [--samples 48] [--video PATH]

The video is generated once into a temporary folder with OpenCV's mp4v writer (MPEG-4 part 2:
keyframes and predicted frames, so every sample costs a real seek: decoding from the keyframe
before it), four distinct 1920x1080 scenes built from ultralytics' bus photo, each held for a
second. Generation is timed and printed on its own. `--fps` sets the frame rate: the encoder
needs ~20 ms a 1080p frame here, so 30 fps (18,000 frames) takes ~6 minutes to write and 5 fps
(3,000 frames) about one; the assessment samples the same number of frames either way, and a
seek decodes at most one group of pictures, whose length OpenCV sets in frames, so its cost
does not grow with the frame rate. `--video` assesses an existing file instead.

The assessment is `workers.video_sampling.assess_file`, exactly what the worker runs: open,
seek to each of `--samples` evenly spaced frames, decode it, scale to 640 px wide, measure.
Reported: each run's seconds, the median of `--runs`, and where the time goes (decoding and
seeking vs measuring).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.video_quality import SAMPLE_COUNT, measure
from workers.video_sampling import _analysed, assess_file

TARGET_S = 10.0
SIZE = (1920, 1080)


def scenes() -> list[npt.NDArray[np.uint8]]:
    photo = cv2.imread(str(Path(cv2.__file__).parents[1] / "ultralytics" / "assets" / "bus.jpg"))
    if photo is None:
        msg = "ultralytics' bus.jpg not found"
        raise SystemExit(msg)
    base = cv2.resize(photo, SIZE, interpolation=cv2.INTER_AREA)
    return [np.asarray(np.roll(base, 240 * i, axis=1), dtype=np.uint8) for i in range(4)]


def generate(path: Path, minutes: float, fps: int) -> float:
    frames = round(minutes * 60 * fps)
    distinct = scenes()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), float(fps), SIZE)
    if not writer.isOpened():
        msg = "OpenCV cannot write mp4v here"
        raise SystemExit(msg)
    started = time.perf_counter()
    for i in range(frames):
        writer.write(distinct[(i // fps) % len(distinct)])
        if i % (fps * 60) == 0:
            print(f"  generating: minute {i // (fps * 60)} of {minutes:g}", flush=True)
    writer.release()
    return time.perf_counter() - started


def measuring_share(path: Path, samples: int) -> float:
    """Seconds the measuring alone takes for `samples` frames (decoded once, up front)."""
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        msg = f"cannot read {path}"
        raise SystemExit(msg)
    started = time.perf_counter()
    for i in range(samples):
        measure(_analysed(frame), i)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=SAMPLE_COUNT)
    parser.add_argument("--video", type=Path, help="assess this file instead of generating one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="verity-bench-video-") as tmp:
        path = args.video
        if path is None:
            path = Path(tmp) / "ten_minutes_1080p.mp4"
            print(f"Generating {args.minutes:g} min of 1920x1080 at {args.fps} fps (mp4v) ...")
            seconds = generate(path, args.minutes, args.fps)
            print(f"generation: {seconds:.1f} s, {path.stat().st_size / 1e6:.1f} MB")
        capture = cv2.VideoCapture(str(path))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = capture.get(cv2.CAP_PROP_FPS)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        capture.release()
        duration = count / fps if fps else 0.0
        print(f"video: {width}x{height}, {count} frames at {fps:g} fps = {duration / 60:.1f} min")

        times: list[float] = []
        for run in range(args.runs):
            started = time.perf_counter()
            verdict = assess_file(path, args.samples)
            times.append(time.perf_counter() - started)
            print(
                f"  run {run + 1}: {times[-1]:.2f} s  ({verdict.samples} samples,"
                f" {verdict.samples_failed} failed, score {verdict.score:.3f},"
                f" flags {list(verdict.flags)})"
            )
        median = statistics.median(times)
        measuring = measuring_share(path, args.samples)
        print(f"assessment: median {median:.2f} s of {args.runs} (target < {TARGET_S:g} s)")
        print(
            f"  where it goes: measuring {measuring:.2f} s ({measuring / args.samples * 1e3:.1f}"
            f" ms a sample), seeking and decoding {max(0.0, median - measuring):.2f} s"
            f" ({max(0.0, median - measuring) / args.samples * 1e3:.0f} ms a sample)"
        )
        print("PASS" if median < TARGET_S else "FAIL: over the target")


if __name__ == "__main__":
    main()
