"""Benchmark of the browser-playable rendition: a 1-minute 720p mp4v video into H.264/MP4.

    uv run python bench/bench_rendition.py [--seconds 60] [--fps 30] [--runs 3] [--video PATH]

The video is generated once into a temporary folder with OpenCV's mp4v writer (what the
e2e helpers and many capture tools write, and what Chromium cannot play): a moving 1280x720
street scene built from ultralytics' bus photo. The transcode is `workers.renditions.transcode`,
exactly what the video worker runs (decode, scale to even sides, libx264 `veryfast` CRF 23,
`+faststart`, hard-link into place). Reported per run: seconds, frames/s and the real-time
factor (video seconds per wall second; above 1 is faster than playback); then the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.renditions import probe, transcode

SIZE = (1280, 720)
ASSETS = Path(cv2.__file__).parents[1] / "ultralytics" / "assets"


def generate(path: Path, seconds: float, fps: float) -> Path:
    image = cv2.imread(str(ASSETS / "bus.jpg"))
    if image is None:  # no ultralytics assets: a synthetic scene
        image = np.random.default_rng(7).integers(0, 255, (SIZE[1], SIZE[0], 3), np.uint8)
    scene = cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, SIZE)
    for i in range(round(seconds * fps)):
        writer.write(np.roll(scene, 4 * i, axis=1))  # a pan: real motion for the encoder
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--video", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = args.video
        if source is None:
            began = time.perf_counter()
            source = generate(folder / "source.mp4", args.seconds, args.fps)
            took = time.perf_counter() - began
            print(f"generated {source.stat().st_size / 1e6:.1f} MB in {took:.1f}s")
        facts = probe(source)
        print(
            f"source: {facts.codec} {facts.width}x{facts.height}, {facts.frames} frames, "
            f"{facts.duration:.1f}s"
        )
        rates, factors = [], []
        for run in range(args.runs):
            made = transcode(source, folder, uuid4())
            fps = made.frame_count / made.seconds
            factor = made.duration / made.seconds
            rates.append(fps)
            factors.append(factor)
            print(
                f"run {run + 1}: {made.seconds:.1f}s, {fps:.1f} frames/s, real-time x{factor:.2f}, "
                f"{made.codec} {made.size / 1e6:.1f} MB"
            )
            (folder / made.filename).unlink()
        print(
            f"median: {statistics.median(rates):.1f} frames/s, "
            f"real-time x{statistics.median(factors):.2f} ({args.runs} runs)"
        )


if __name__ == "__main__":
    main()
