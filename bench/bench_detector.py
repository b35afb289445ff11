"""Detector benchmark: a plain ultralytics loop, our inference path, and the worker's whole path.

Builds a 640x480 video from ultralytics' bus.jpg (the photo shifted a few pixels per frame)
and YOLOv8n's architecture from the .yaml ultralytics ships (random weights: the compute of
YOLOv8n, no boxes), then, in the same process, `--repeats` times each, interleaved:

  plain   `for frame in video: model.predict(frame)` with ultralytics on torch (decode included)
  ours    `read_frames` (decoding in a reader thread) + `open_detector` batches on the runtime
          `--runtime` picks (auto: ONNX Runtime on the CPU, torch on CUDA)
  torch   the same reader and batches on ultralytics/torch: what batching and overlap alone give
  decode  `read_frames` alone: the decode cost the reader thread hides
  full    the detector worker's path (bench/detector_full_path.py): a test-session run
          performed by the worker's RunExecutor on the same video and model, every frame
          stored through record_frames on PostgreSQL (a fresh database, dropped at the end),
          timed until the test-session read model holds every frame (read models followed
          as `verity serve` follows them); the detector is opened per run, as the worker does

Prints frames/s (median of the repeats) for each, ours/plain and full/plain (the issue's
target: full >= 1.3x plain), where our inference time goes (waiting for decoded frames,
letterbox, inference, decode+NMS) per frame, and the full path's phases. The one-time ONNX
export is timed apart. Random-weight models find no boxes, so the frames stored are empty.

Usage: uv run python bench/bench_detector.py [--frames 120] [--repeats 3]
           [--device cpu|cuda|auto] [--admin-url URL] [--no-full]
Other processes on the machine share its cores: re-run to confirm figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.update({"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False", "YOLO_VERBOSE": "False"})

import cv2
import numpy as np

from workers.inference import DetectorParams, open_detector, read_frames
from workers.inference.offline import ultralytics
from workers.inference.runtime import resolve_device, resolve_runtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detector_full_path import FullPath, full_path


def make_video(path: Path, frames: int, package: Path) -> None:
    bus = cv2.imread(str(package / "assets" / "bus.jpg"))
    base = cv2.resize(bus, (680, 510))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 480))
    for n in range(frames):
        dx, dy = n % 40, (n // 2) % 30  # a slow pan, so no two frames are the same
        writer.write(np.ascontiguousarray(base[dy : dy + 480, dx : dx + 640]))
    writer.release()


def plain_loop(model: Any, video: Path, device: str, imgsz: int) -> float:
    capture = cv2.VideoCapture(str(video))
    count, started = 0, time.perf_counter()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        model.predict(frame, imgsz=imgsz, device=device, verbose=False)
        count += 1
    capture.release()
    return count / (time.perf_counter() - started)


def our_path(detector: Any, video: Path, batch: int, stages: dict[str, float]) -> float:
    count, waited, started = 0, 0.0, time.perf_counter()
    batches = read_frames(video, batch_size=batch)
    while True:
        asked = time.perf_counter()
        packets = next(batches, None)
        waited += time.perf_counter() - asked
        if packets is None:
            break
        detector.detect([p.image for p in packets])
        count += len(packets)
    elapsed = time.perf_counter() - started
    stages["wait for frames"] = stages.get("wait for frames", 0.0) + waited
    stages["total"] = stages.get("total", 0.0) + elapsed
    return count / elapsed


def decode_only(video: Path, batch: int) -> float:
    started = time.perf_counter()
    count = sum(len(packets) for packets in read_frames(video, batch_size=batch))
    return count / (time.perf_counter() - started)


@contextmanager
def worker_path(
    args: argparse.Namespace, video: Path, weights: Path, setup: dict[str, Any]
) -> Iterator[FullPath | None]:
    if args.no_full:
        yield None
        return
    with full_path(args.admin_url, video, weights, **setup) as full:
        yield full


def record_phases(run: dict[str, float], phases: list[dict[str, float]]) -> float:
    phases.append(run)
    return run["fps"]


def median_rate(rates: list[float]) -> float:
    return round(statistics.median(rates), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu, cuda (= cuda:0), cuda:N or auto")
    parser.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL admin connection that creates and drops the full path's database",
    )
    parser.add_argument("--no-full", action="store_true", help="skip the worker's full path")
    args = parser.parse_args()
    device = resolve_device("cuda:0" if args.device == "cuda" else args.device)
    runtime = resolve_runtime(args.runtime, device)

    module = ultralytics()
    import torch  # noqa: PLC0415 (after the environment is set)

    package = Path(module.__file__).parent
    work = Path(tempfile.mkdtemp(prefix="bench-detector-"))
    try:
        video = work / "bus_pan.mp4"
        make_video(video, args.frames, package)
        weights = work / "yolov8n.yaml"
        shutil.copyfile(package / "cfg" / "models" / "v8" / "yolov8.yaml", weights)
        print(f"{args.frames} frames 640x480, YOLOv8n from yolov8n.yaml, imgsz {args.imgsz}, "
              f"device {device}, our runtime {runtime}, batch {args.batch}, torch "
              f"{torch.__version__} with {torch.get_num_threads()} threads, "
              f"{os.cpu_count()} CPUs")  # fmt: skip

        model = module.YOLO(str(weights))
        params = DetectorParams(imgsz=args.imgsz, batch_size=args.batch, device=device,
                                runtime=runtime)  # fmt: skip
        started = time.perf_counter()
        ours = open_detector(weights, params)
        opened_s = time.perf_counter() - started
        batched_torch = open_detector(weights, DetectorParams(
            imgsz=args.imgsz, batch_size=args.batch, device=device, runtime="torch"))  # fmt: skip
        frame = cv2.VideoCapture(str(video)).read()[1]
        for _ in range(2):  # warm-up: predictor set-up, first-call allocations
            model.predict(frame, imgsz=args.imgsz, device=device, verbose=False)
            ours.detect([frame] * args.batch)
            batched_torch.detect([frame] * args.batch)
        for timings in (getattr(ours, "timings", {}), getattr(batched_torch, "timings", {})):
            for key in timings:
                timings[key] = 0.0

        rates: dict[str, list[float]] = {"plain": [], "ours": [], "torch": [], "decode": []}
        stages: dict[str, float] = {}
        phases: list[dict[str, float]] = []
        runs: list[tuple[str, Callable[[], float]]] = [
            ("plain", lambda: plain_loop(model, video, device, args.imgsz)),
            ("ours", lambda: our_path(ours, video, args.batch, stages)),
            ("torch", lambda: our_path(batched_torch, video, args.batch, {})),
            ("decode", lambda: decode_only(video, args.batch)),
        ]
        setup: dict[str, Any] = {
            "frames": args.frames,
            "imgsz": args.imgsz,
            "batch": args.batch,
            "device": device,
            "runtime": runtime,
            "class_names": tuple(ours.info.class_names),
        }
        with worker_path(args, video, weights, setup) as full:
            if full is not None:
                rates["full"] = []
                full.run()  # warm-up: first stores, first read-model rows
                runs.append(("full", lambda: record_phases(full.run(), phases)))
            for repeat in range(args.repeats):
                for name, run in runs:
                    rates[name].append(run())
                print(f"repeat {repeat + 1}: " + ", ".join(
                    f"{name} {values[-1]:.2f}" for name, values in rates.items()))  # fmt: skip

        frames_timed = args.frames * args.repeats
        breakdown = {k: round(v / frames_timed * 1000, 2) for k, v in stages.items()}
        timings = getattr(ours, "timings", {})
        breakdown.update({k: round(v / frames_timed * 1000, 2) for k, v in timings.items()})
        result = {
            "frames": args.frames,
            "device": device,
            "runtime": runtime,
            "plain_fps": median_rate(rates["plain"]),
            "ours_fps": median_rate(rates["ours"]),
            "torch_batched_fps": median_rate(rates["torch"]),
            "decode_only_fps": median_rate(rates["decode"]),
            "ours_ms_per_frame": breakdown,
            "open_detector_s": round(opened_s, 2),
        }
        result["ratio"] = round(result["ours_fps"] / result["plain_fps"], 2)
        if phases:
            result["full_fps"] = median_rate(rates["full"])
            result["full_ratio"] = round(result["full_fps"] / result["plain_fps"], 2)
            keys = [k for k in phases[0] if k != "fps"]
            result["full_phases_s"] = {
                k: round(statistics.median(p[k] for p in phases), 3) for k in keys
            }
        print(f"plain loop          {result['plain_fps']:8.2f} frames/s")
        print(f"ours ({runtime:5})        {result['ours_fps']:8.2f} frames/s  "
              f"= {result['ratio']:.2f}x the plain loop")  # fmt: skip
        print(
            f"ours on torch       {result['torch_batched_fps']:8.2f} frames/s  "
            "(reader thread + batches, no runtime change)"
        )
        print(f"decode alone        {result['decode_only_fps']:8.2f} frames/s")
        if phases:
            print(f"full worker path    {result['full_fps']:8.2f} frames/s  "
                  f"= {result['full_ratio']:.2f}x the plain loop (target >= 1.3x), with storing "
                  "and projecting")  # fmt: skip
            print(f"full path, seconds per run (medians): {result['full_phases_s']}")
        print(f"ours, ms per frame: {breakdown}  (first open, export included: "
              f"{opened_s:.1f} s)")  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
