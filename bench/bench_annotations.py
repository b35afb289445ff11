"""Benchmark of annotations: bulk COCO import end to end, and the per-video list read.

    uv run python bench/bench_annotations.py [--boxes 100000]
        [--list-size 10000] [--runs 3] [--seconds 10]

Runs the real `verity serve` against the local PostgreSQL and NATS, in a fresh database
(verity_bench_ann_<random>, dropped at the end) under a unique NATS prefix.

1. Import: a COCO file of N boxes (1920x1080 video, 20 boxes per frame) is POSTed to
   /api/videos/{id}/annotations/import. Timed from the start of the upload until the
   annotations read model (rm_annotations) holds all N rows, with the phases: upload+parse+
   validate (until the 202 answer), storing (until the job's read model says completed) and
   the annotations read model catching up. Reported as boxes/s end to end.
2. Read: a second video with M annotations; `wrk -t2 -c4 -dS --latency` on
   GET /api/videos/{id}/annotations (falls back to an httpx loop when wrk is missing);
   p50/p99 latency, requests/s.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import msgspec
import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_spine import (
    free_port,
    fresh_database,
    load,
    run_wrk,
    served,
    server_command,
)

WIDTH, HEIGHT = 1920, 1080


def make_video(path: Path, frames: int = 3) -> Path:
    """A black video of `frames` frames (annotations beyond a video's length are refused)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (WIDTH, HEIGHT))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 1)  # black frames of a few kB: uploads stay small
    for _ in range(frames):
        writer.write(np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    writer.release()
    return path


def coco_file(boxes: int, per_frame: int = 20) -> bytes:
    frames = (boxes + per_frame - 1) // per_frame
    names = ["pedestrian", "cyclist", "motorcyclist"]
    annotations = []
    for i in range(boxes):
        frame, k = divmod(i, per_frame)
        annotations.append(
            {
                "id": i + 1,
                "image_id": frame + 1,
                "category_id": 1 + i % 3,
                "bbox": [float(k * 90 + frame % 7), float(100 + k * 30), 60.0, 140.0],
                "area": 8400.0,
                "iscrowd": 0,
                "attributes": {"detection_id": f"T{k}", "occluded": i % 5 == 0},
            }
        )
    document = {
        "images": [
            {"id": f + 1, "file_name": f"frame_{f:06d}.jpg", "width": WIDTH, "height": HEIGHT}
            for f in range(frames)
        ],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
        "annotations": annotations,
    }
    return msgspec.json.encode(document)


def upload_video(client: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        response = client.post("/api/videos", files={"file": (path.name, f, "video/mp4")})
    response.raise_for_status()
    video_id: str = response.json()["id"]
    return video_id


def rm_count(url: str, video_id: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM rm_annotations WHERE video_id = %s AND NOT deleted", (video_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def import_boxes(
    client: httpx.Client, url: str, video_id: str, data: bytes, n: int
) -> dict[str, float]:
    t0 = time.perf_counter()
    response = client.post(
        f"/api/videos/{video_id}/annotations/import",
        params={"format": "coco"},
        files={"file": ("boxes.json", data, "application/json")},
        timeout=600,
    )
    accepted = time.perf_counter()
    if response.status_code not in (200, 202):
        msg = f"import refused: {response.status_code} {response.text[:500]}"
        raise RuntimeError(msg)
    job = response.json().get("jobId")
    stored = accepted
    if job is not None:
        while True:
            status = client.get(f"/api/annotation-imports/{job}").json()
            if status["status"] != "running":
                if status["status"] != "completed":
                    msg = f"import job ended {status}"
                    raise RuntimeError(msg)
                break
            time.sleep(0.05)
        stored = time.perf_counter()
    while rm_count(url, video_id) < n:
        time.sleep(0.05)
    done = time.perf_counter()
    return {
        "total": done - t0,
        "upload_parse_validate": accepted - t0,
        "store": stored - accepted,
        "read_model_after_store": done - stored,
    }


def httpx_latencies(client: httpx.Client, path: str, seconds: float) -> tuple[float, float, float]:
    samples = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        client.get(path).raise_for_status()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    return p(0.5), p(0.99), len(samples) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boxes", type=int, default=100_000)
    parser.add_argument("--list-size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    args = parser.parse_args()

    print(f"load average at start: {load()}  (cores: {os.cpu_count()})")
    name = f"verity_bench_ann_{secrets.token_hex(4)}"
    with (
        fresh_database(args.admin_url, name, keep=False) as url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        port = free_port()
        env = {
            **os.environ,
            "VERITY_DATABASE_URL": url,
            "VERITY_NATS_URL": args.nats_url,
            "VERITY_PORT": str(port),
            "VERITY_DATA_DIR": tmp,
            "VERITY_NATS_PREFIX": f"bench{secrets.token_hex(4)}",
            "VERITY_READ_WAIT_TIMEOUT": "60",
        }
        with served(server_command(), env, port, Path(tmp) / "server.log") as server:
            client = httpx.Client(base_url=server.base, timeout=120)
            video = make_video(Path(tmp) / "clip.avi", frames=(args.boxes + 19) // 20)

            print(f"\n== import: COCO file with {args.boxes:,} boxes ==")
            data = coco_file(args.boxes)
            print(f"file size {len(data) / 1e6:.1f} MB")
            rates = []
            for run in range(args.runs):
                vid = upload_video(client, video)
                phases = import_boxes(client, url, vid, data, args.boxes)
                rate = args.boxes / phases["total"]
                rates.append(rate)
                detail = "  ".join(f"{k} {v:.2f}s" for k, v in phases.items())
                print(f"run {run + 1}: {rate:,.0f} boxes/s end to end  ({detail})", flush=True)
            print(
                f"import median: {statistics.median(rates):,.0f} boxes/s"
                f"  runs {[round(r) for r in rates]}"
            )

            print(f"\n== GET /api/videos/{{id}}/annotations with {args.list_size:,} annotations ==")
            vid = upload_video(client, video)
            import_boxes(client, url, vid, coco_file(args.list_size), args.list_size)
            path = f"/api/videos/{vid}/annotations"
            cold = []
            for _ in range(5):  # a write moves the read model, so the next read renders again
                first = client.get(f"/api/videos/{vid}/annotations").json()[0]
                client.put(f"/api/annotations/{first['id']}", json={"notes": secrets.token_hex(4)})
                t = time.perf_counter()
                body = client.get(path)
                cold.append((time.perf_counter() - t) * 1000)
            print(
                f"response {len(body.content) / 1e6:.2f} MB, {len(body.json()):,} items;"
                f" first read after a write (body rendered, not cached): median"
                f" {statistics.median(cold):.1f} ms of {[round(c) for c in cold]}"
            )
            wrk = shutil.which("wrk")
            results: list[Any] = []
            if wrk is not None:
                run_wrk(wrk, server.base + path, 2)  # warm-up
                for run in range(args.runs):
                    res = run_wrk(wrk, server.base + path, args.seconds)
                    results.append((res.p50, res.p99, res.rps))
                    print(f"wrk run {run + 1}: {res.line()}", flush=True)
                tool = "wrk -t2 -c4"
            else:
                for run in range(args.runs):
                    results.append(httpx_latencies(client, path, args.seconds))
                    print(
                        f"httpx run {run + 1}: p50 {results[-1][0]:.1f} ms"
                        f" p99 {results[-1][1]:.1f} ms"
                    )
                tool = "httpx loop, 1 connection"
            p50 = statistics.median(r[0] for r in results)
            p99 = statistics.median(r[1] for r in results)
            rps = statistics.median(r[2] for r in results)
            print(
                f"list median ({tool}, repeated reads of an unchanged read model):"
                f" p50 {p50:.1f} ms  p99 {p99:.1f} ms  {rps:,.1f} req/s"
            )
            client.close()
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
