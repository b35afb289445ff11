"""Benchmark: does the evaluator keep up with a session ingesting 10k frames/s?

Data: one session, F frames x 20 ground-truth boxes (5 classes) and 20 detections per frame
(15 jittered copies of ground truth, 5 strays), the same generator as bench_evaluation. Each
frame is one relayed event envelope (JSON bytes, as the relay publishes them).

Two measurements:
1. `cpu`: the evaluator's own work per second of ingest: decoding 10k envelopes
   (`Evaluator.on_frame`), building the batch and folding it into the running evaluation
   (`Evaluator.progress`, publishing to a no-op). "Keeps up" means every tick's work for one
   second of data takes well under one second.
2. `nats` (default on, `--no-nats` to skip): envelopes are published to the local NATS at
   10k frames/s (paced) while the evaluator, subscribed as in `verity serve`, ticks every
   second. Reported: frames received vs published at the end (backlog), tick durations.

The running figures are checked against a full `evaluate()` of the same data at the end.

Run: `uv run python bench/bench_incremental_eval.py [--seconds 10] [--rate 10000]`
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import numpy as np

from domain.evaluation import EvaluationConfig, evaluate, make_detections, make_ground_truth
from domain.running_evaluation import RunningEvaluation
from projections.envelopes import Envelope, encode
from workers.evaluator import Evaluator, _Running

CLASSES = ("pedestrian", "cyclist", "motorcyclist", "scooter_rider", "animal")


def make_data(seed: int, n_frames: int, n_gt: int = 20, n_tp: int = 15, n_fp: int = 5) -> Any:
    rng = np.random.default_rng(seed)
    n = n_frames * n_gt
    gt_frame = np.repeat(np.arange(n_frames), n_gt)
    wh = rng.uniform(16, 240, (n, 2)).round(1)
    xy = (rng.uniform(0, 1, (n, 2)) * (np.array([1920.0, 1080.0]) - wh)).round(1)
    gt_box = np.c_[xy, wh]
    gt_cls = rng.integers(0, len(CLASSES), n)
    pick = np.argsort(rng.random((n_frames, n_gt)), axis=1)[:, :n_tp]
    src = (pick + np.arange(n_frames)[:, None] * n_gt).ravel()
    m = src.shape[0]
    tp_box = np.c_[
        gt_box[src, :2] + rng.normal(0, 0.05, (m, 2)) * gt_box[src, 2:],
        gt_box[src, 2:] * np.exp(rng.normal(0, 0.08, (m, 2))),
    ].round(1)
    tp_cls = np.where(rng.random(m) < 0.9, gt_cls[src], rng.integers(0, len(CLASSES), m))
    k = n_frames * n_fp
    fp_wh = rng.uniform(16, 240, (k, 2)).round(1)
    fp_box = np.c_[(rng.uniform(0, 1, (k, 2)) * (np.array([1920.0, 1080.0]) - fp_wh)), fp_wh]
    det_frame = np.r_[gt_frame[src], np.repeat(np.arange(n_frames), n_fp)]
    det_box = np.r_[tp_box, fp_box.round(1)]
    det_cls = np.r_[tp_cls, rng.integers(0, len(CLASSES), k)]
    det_score = np.r_[rng.beta(5, 2, m), rng.beta(2, 5, k)].round(3)
    order = np.argsort(det_frame, kind="stable")
    return {
        "gt": make_ground_truth(
            frame=gt_frame, label=gt_cls, box=gt_box, time_s=gt_frame / 30, classes=CLASSES
        ),
        "det": (det_frame[order], det_cls[order], det_box[order], det_score[order]),
    }


def envelopes(session: str, det: Any, n_frames: int) -> list[bytes]:
    """One relayed `device_frame.recorded` envelope per frame, nested as the relay nests it."""
    frame, cls, box, score = det
    bounds = np.searchsorted(frame, np.arange(n_frames + 1))
    now = datetime.now(UTC).isoformat()
    out = []
    for f in range(n_frames):
        lo, hi = int(bounds[f]), int(bounds[f + 1])
        detections = [
            {
                "class_label": CLASSES[int(cls[i])],
                "confidence": float(score[i]),
                "box": box[i].tolist(),
            }
            for i in range(lo, hi)
        ]
        data = {
            "sessionId": session,
            "deviceId": "bench",
            "seq": f,
            "videoTime": f / 30,
            "receivedAt": now,
            "detections": detections,
            "frameNumber": f,
        }
        env = Envelope(
            position=f + 1,
            id=str(uuid4()),
            aggregate="device_frame",
            aggregate_id=str(uuid4()),
            version=1,
            type="recorded",
            occurred_at=now,
            actor="bench",
            correlation_id=None,
            causation_id=None,
            data=data,
        )
        out.append(encode(env))
    return out


async def _noop(subject: str, payload: bytes) -> None:
    return None


def new_evaluator(session: Any, gt: Any, config: EvaluationConfig) -> Evaluator:
    ev = Evaluator(None, None, _noop, "bench.live")  # type: ignore[arg-type]
    ev.running[session] = _Running(RunningEvaluation(gt, config), 30.0)
    return ev


async def cpu_run(
    payloads: list[bytes], rate: int, session: Any, gt: Any, config: EvaluationConfig
) -> tuple[list[float], Evaluator]:
    ev = new_evaluator(session, gt, config)
    ticks = []
    for start in range(0, len(payloads), rate):
        t0 = time.perf_counter()
        for p in payloads[start : start + rate]:
            ev.on_frame(p)
        await ev.progress()
        ticks.append(time.perf_counter() - t0)
    return ticks, ev


def _publisher(url: str, subject: str, session: str, seconds: int, rate: int, out: Any) -> None:
    """Runs in its own process, like a device and the ingest path would: builds the same
    envelopes and publishes them paced at `rate` frames/s; reports (start, end) wall times."""

    async def go() -> None:
        import nats  # noqa: PLC0415

        n_frames = seconds * rate
        payloads = envelopes(session, make_data(0, n_frames)["det"], n_frames)
        nc = await nats.connect(url)
        out.put("ready")
        started = time.time()
        chunk = max(1, rate // 100)  # 10 ms slices
        for i in range(0, n_frames, chunk):
            for p in payloads[i : i + chunk]:
                await nc.publish(subject, p)
            if (wait := started + (i + chunk) / rate - time.time()) > 0:
                await asyncio.sleep(wait)
        await nc.flush()
        out.put((started, time.time()))
        await nc.close()

    asyncio.run(go())


async def nats_run(
    n_frames: int, rate: int, session: Any, gt: Any, config: EvaluationConfig, url: str
) -> dict[str, Any]:
    import multiprocessing  # noqa: PLC0415

    import nats  # noqa: PLC0415

    prefix = f"bench{uuid4().hex[:8]}"
    problems: list[str] = []

    async def error_cb(err: Exception) -> None:
        problems.append(f"{type(err).__name__}: {err}")

    nc = await nats.connect(url, error_cb=error_cb)
    ev = new_evaluator(session, gt, config)
    await ev.subscribe(nc, f"{prefix}.events")
    await nc.flush()  # the server has the subscription before the first publish
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(
        target=_publisher,
        args=(
            url,
            f"{prefix}.events.device_frame.recorded",
            str(session),
            n_frames // rate,
            rate,
            out,
        ),
    )
    proc.start()
    await asyncio.to_thread(out.get)  # "ready": data built, connected
    stop = asyncio.Event()
    ticks: list[float] = []
    lag: list[float] = []  # frames published by now minus frames folded in, in seconds of ingest
    t0 = time.time()

    async def tick_loop() -> None:
        while not stop.is_set():
            await asyncio.sleep(max(0.0, 1.0 - (ticks[-1] if ticks else 0.0)))
            started = time.perf_counter()
            await ev.progress()
            ticks.append(time.perf_counter() - started)
            published = min(n_frames, (time.time() - t0) * rate)
            folded = ev.running[session].evaluation.frames_seen
            lag.append(max(0.0, published - folded) / rate)

    ticker = asyncio.create_task(tick_loop())
    started, ended = await asyncio.to_thread(out.get)
    deadline = time.time() + 60
    while ev.frames < n_frames and time.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # one more tick folds the rest
    stop.set()
    await ticker
    await ev.progress()
    proc.join()
    for sub in ev.subscriptions:
        await sub.unsubscribe()
    await nc.close()
    return {
        "publish_s": ended - started,
        "ticks": ticks,
        "lag": lag,
        "evaluator": ev,
        "problems": problems,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=10_000, help="frames per second")
    parser.add_argument("--no-nats", action="store_true")
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    args = parser.parse_args()
    n_frames = args.seconds * args.rate
    t0 = time.perf_counter()
    data = make_data(0, n_frames)
    session = uuid4()
    payloads = envelopes(str(session), data["det"], n_frames)
    mb = sum(map(len, payloads)) / 1e6
    print(
        f"data: {n_frames} frames, {len(data['gt'])} ground truth, "
        f"{len(data['det'][0])} detections, {mb:.0f} MB of envelopes "
        f"(built in {time.perf_counter() - t0:.1f}s)"
    )
    config = EvaluationConfig()

    ticks, ev = asyncio.run(cpu_run(payloads, args.rate, session, data["gt"], config))
    counts = ev.running[session].evaluation.counts()
    print(
        f"cpu: work per 1 s of ingest ({args.rate} frames, {20 * args.rate} detections): "
        f"median {statistics.median(ticks):.3f}s, max {max(ticks):.3f}s "
        f"-> {args.rate / statistics.median(ticks):,.0f} frames/s sustainable "
        f"({statistics.median(ticks):.0%} of the time budget)"
    )

    frame, cls, box, score = data["det"]
    det = make_detections(
        frame=frame, label=cls, box=box, score=score, time_s=frame / 30, classes=CLASSES
    )
    full = evaluate(
        data["gt"], det, EvaluationConfig(bootstrap_resamples=0, ap_bootstrap_resamples=0)
    ).counts
    same = (counts.tp, counts.fp, counts.fn) == (full.tp, full.fp, full.fn)
    print(
        f"check: running TP/FP/FN {counts.tp}/{counts.fp}/{counts.fn} == full evaluation "
        f"{full.tp}/{full.fp}/{full.fn}: {same}"
    )
    if not same:
        raise SystemExit("running figures differ from the full evaluation")

    if not args.no_nats:
        res = asyncio.run(nats_run(n_frames, args.rate, session, data["gt"], config, args.nats_url))
        got = res["evaluator"].running[session].evaluation.counts()
        t, lag = res["ticks"] or [0.0], res["lag"] or [0.0]
        half = len(lag) // 2
        print(
            f"nats: publisher process sent {n_frames} frames in {res['publish_s']:.2f}s "
            f"({n_frames / res['publish_s']:,.0f} frames/s); evaluator ticks median "
            f"{statistics.median(t):.3f}s, max {max(t):.3f}s; lag behind ingest (s of data) "
            f"median {statistics.median(lag):.2f}, max {max(lag):.2f}, first half max "
            f"{max(lag[:half] or [0]):.2f}, second half max {max(lag[half:] or [0]):.2f}; "
            f"final TP {got.tp} (full {full.tp})"
        )
        for problem in sorted(set(res["problems"])):
            print(f"nats problem: {problem}")


if __name__ == "__main__":
    main()
