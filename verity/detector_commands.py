"""CLI commands around detector models: the detector worker alone, `models add`, `detect`."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from domain.access import service
from verity.settings import Settings

CLI_ACTOR = service("cli").actor
"""What the command line's events record: whoever can run it can reach the database."""

os.environ.setdefault("YOLO_OFFLINE", "1")  # weights are never downloaded at run time


def add_detector_parsers(sub: Any) -> None:
    """`verity models add` and `verity detect`."""
    models = sub.add_parser("models", help="detector models")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    add = models_sub.add_parser("add", help="register weights (.pt, .onnx, ultralytics .yaml)")
    add.add_argument("path", type=Path)
    add.add_argument("--name", help="the model's name (default: the file's stem)")
    detect = sub.add_parser("detect", help="run a registered model over a video")
    detect.add_argument("--video", type=UUID, required=True, help="video id")
    detect.add_argument("--model", required=True, help="model id, name or name:version")
    detect.add_argument(
        "--ground-truth",
        action="store_true",
        help="store annotation candidates instead of a test session's detections",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def models_add_command(settings: Settings, path: Path, name: str | None) -> None:
    """`verity models add PATH`: copy into the store, register, inspect in a subprocess."""
    from api.model_uploads import sniff, stored_name  # noqa: PLC0415
    from commands.context import run_as  # noqa: PLC0415
    from commands.detector_models import (  # noqa: PLC0415
        RecordInspection,
        RegisterModel,
        record_inspection,
        register_model,
    )
    from domain.detector_models import Inspection, framework_of  # noqa: PLC0415
    from domain.events import EventMeta  # noqa: PLC0415
    from verity.bootstrap import open_application, servers  # noqa: PLC0415
    from workers.inference import WeightsRefused, run_inspection_subprocess  # noqa: PLC0415

    if not path.is_file():
        sys.exit(f"{path}: no such file")
    ext = path.suffix.lower()
    framework = framework_of(ext)
    why = sniff(path, ext)
    if why is not None:
        sys.exit(f"{path}: {why}")
    sha = _sha256(path)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    stored = settings.models_dir / stored_name(sha, path.name)
    if not stored.exists():
        shutil.copyfile(path, stored)
    cmd = RegisterModel(
        name=name or path.stem,
        version=sha[:12],
        framework=framework,
        sha256=sha,
        filename=stored.name,
        original_name=path.name,
        size=stored.stat().st_size,
    )
    meta = EventMeta(actor=CLI_ACTOR)
    with servers(settings) as endpoints:
        app = open_application(endpoints.database_url)
        try:
            run_as(meta, register_model, cmd, app)
            print(f"registered {cmd.name} ({cmd.id}); loading it once to inspect ...", flush=True)
            inspection, refusal = None, None
            try:
                info = run_inspection_subprocess(stored, 300.0)
                inspection = Inspection(
                    framework=info.framework,
                    class_names=tuple(info.class_names),
                    input_size=info.input_size,
                    task=info.task,
                )
            except WeightsRefused as err:
                refusal = err.reason
            done = RecordInspection(id=cmd.id, inspection=inspection, refusal=refusal)
            run_as(meta, record_inspection, done, app)
            from commands.detector_models import load_model  # noqa: PLC0415

            model = load_model(app, cmd.id)
            print(
                f"{model.name} {model.model_version}: {model.status.value} {model.reason}".rstrip()
            )
        finally:
            app.close()


def detect_command(settings: Settings, video: UUID, model: str, ground_truth: bool) -> None:
    """`verity detect`: request a run, hand it to the detector queue, follow it with a bar."""
    from tqdm import tqdm  # noqa: PLC0415

    from commands.context import run_as  # noqa: PLC0415
    from commands.detection_runs import (  # noqa: PLC0415
        RequestRun,
        load_run,
        planned_frames,
        request_run,
    )
    from domain.detection_runs import RunMode  # noqa: PLC0415
    from domain.events import EventMeta  # noqa: PLC0415
    from verity.bootstrap import open_application, servers  # noqa: PLC0415
    from workers.detector_queue import DetectorQueue  # noqa: PLC0415

    with servers(settings) as endpoints:
        app = open_application(endpoints.database_url)
        try:
            model_id = _model_id(endpoints.database_url, model)
            mode = RunMode.GROUND_TRUTH if ground_truth else RunMode.TEST_SESSION
            cmd = RequestRun(model_id=model_id, video_id=video, mode=mode)
            run_as(EventMeta(actor=CLI_ACTOR), request_run, cmd, app)

            async def enqueue() -> None:
                import nats  # noqa: PLC0415

                nc = await nats.connect(
                    endpoints.nats_url, name="verity-detect", **endpoints.nats_options
                )
                try:
                    await DetectorQueue(nc.jetstream(), settings.nats_prefix).run(cmd.id)
                finally:
                    await nc.drain()

            asyncio.run(enqueue())
            run = load_run(app, cmd.id)
            total = planned_frames(run.total_frames, run.parameters.frame_stride)
            print(f"run {cmd.id}: {run.model_name} on video {video} ({mode.value})", flush=True)
            with tqdm(total=total or None, unit="frame", desc="detect") as bar:
                while not run.finished:
                    time.sleep(0.5)
                    run = load_run(app, cmd.id)
                    bar.update(run.frames_done - bar.n)
                bar.update(run.frames_done - bar.n)
            why = f": {run.reason}" if run.reason else ""
            print(f"{run.status.value}: {run.frames_done} frames, {run.detections} detections{why}")
        finally:
            app.close()


def _model_id(database_url: str, ref: str) -> UUID:
    """A model by id, or by name / `name:version` (the ready one first, from the read model)."""
    try:
        return UUID(ref)
    except ValueError:
        pass
    import psycopg  # noqa: PLC0415

    from projections.detector_models import find_models  # noqa: PLC0415

    async def lookup() -> list[UUID]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return [row.id for row in await find_models(conn, ref)]

    found = asyncio.run(lookup())
    if not found:
        sys.exit(f"--model: no model is called {ref!r} (verity models add PATH registers one)")
    return found[0]
