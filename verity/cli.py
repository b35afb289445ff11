"""`verity` command line: serve, migrate, rebuild, and the workers run alone for scale-out."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any, NoReturn
from uuid import UUID

from verity.chain_commands import add_chain_commands, chain_command
from verity.detector_commands import (
    add_detector_parsers,
    detect_command,
    models_add_command,
)
from verity.device_commands import device_schema_command, simulate_command
from verity.rebuild_command import RebuildMode, rebuild_command
from verity.settings import Settings
from verity.worker_command import worker_command
from verity.worker_registry import WORKERS


def _interrupt(signum: int, _frame: Any) -> NoReturn:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _describe(settings: Settings, database_url: str, nats_url: str) -> str:
    from verity.waiting import nats_location, postgres_location  # noqa: PLC0415

    db = "embedded" if settings.database_url is None else "external"
    ns = "embedded" if settings.nats_url is None else "external"
    base = f"http://{settings.host}:{settings.port}"
    return (
        f"Verity serving on {base}\n"
        f"  API docs:  {base}/schema  (Swagger UI: {base}/schema/swagger)\n"
        f"  WebSocket: ws://{settings.host}:{settings.port}/ws\n"
        f"  data:      {settings.data_dir}\n"
        f"  database:  {db} {postgres_location(database_url)}\n"
        f"  NATS:      {ns} {nats_location(nats_url)}\n"
        "Press Ctrl-C to stop."
    )


def serve(settings: Settings) -> None:
    """The API with projections and the workers the VERITY_SERVE_* settings enable."""
    import uvicorn  # noqa: PLC0415 - keep `verity migrate` light

    from api.app import create_app  # noqa: PLC0415
    from api.services import Services  # noqa: PLC0415
    from verity.bootstrap import running, servers, settle_heap  # noqa: PLC0415

    with servers(settings) as endpoints:
        print(_describe(settings, endpoints.database_url, endpoints.nats_url), flush=True)

        server: uvicorn.Server | None = None

        @contextlib.asynccontextmanager
        async def started() -> AsyncIterator[Services]:
            """The process's services; the heap is settled once they are up (this process
            only: tests build apps with `running` too and must not freeze their heaps).

            uvicorn holds SIGTERM/SIGINT back until start-up is over; a watcher passes them
            on, so a start-up still waiting for PostgreSQL or NATS stops at once."""
            stop = asyncio.Event()
            watcher = asyncio.create_task(_stop_when_exiting(server, stop))
            try:
                async with running(settings, endpoints, stop=stop) as svc:
                    settle_heap()
                    yield svc
            finally:
                watcher.cancel()

        app = create_app(started, settings.uploads_dir)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level="info", access_log=False
        )
        server = uvicorn.Server(config)
        try:
            server.run()
        except SystemExit:
            if not server.should_exit:
                raise
            # a signal during start-up: uvicorn calls that a failed start-up; it was a stop


async def _stop_when_exiting(server: Any, stop: asyncio.Event) -> None:
    """Set `stop` once uvicorn was asked to exit (it records the signal and carries on)."""
    while server is None or not server.should_exit:  # noqa: ASYNC110 - a flag, no event
        await asyncio.sleep(0.1)
    stop.set()


def migrate_command(settings: Settings) -> None:
    from storage.migrate import migrate  # noqa: PLC0415
    from verity.bootstrap import servers  # noqa: PLC0415

    with servers(settings) as endpoints:
        applied = migrate(endpoints.database_url)
        print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="verity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="API + projections + relay in one process")
    sub.add_parser("migrate", help="apply pending SQL migrations")
    rebuild = sub.add_parser("rebuild", help="empty read models and rebuild them from events")
    rebuild.add_argument("projections", nargs="*", help="names (default: all)")
    what = rebuild.add_mutually_exclusive_group()
    what.add_argument(
        "--list-failures",
        dest="mode",
        action="store_const",
        const=RebuildMode.LIST_FAILURES,
        help="list the events the read models could not apply; change nothing",
    )
    what.add_argument(
        "--retry-failures",
        dest="mode",
        action="store_const",
        const=RebuildMode.RETRY_FAILURES,
        help="apply those events again (after a fix) instead of rebuilding",
    )
    worker = sub.add_parser(
        "worker",
        help="run one worker alone, as `serve` runs it",
        description="\n".join(f"{name}: {entry.help}" for name, entry in WORKERS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument("name", choices=list(WORKERS))
    add_detector_parsers(sub)
    simulate = sub.add_parser("simulate-device", help="publish a test session's frames over NATS")
    simulate.add_argument("--session", type=UUID, required=True, help="test session id")
    simulate.add_argument("--fps", type=float, default=30.0, help="frames per second (0: max)")
    simulate.add_argument("--duration", type=float, default=60.0, help="seconds of video")
    simulate.add_argument("--device", default="sim-1", help="device id")
    simulate.add_argument("--seed", type=int, default=7)
    sub.add_parser("device-schema", help="print the device frame message JSON Schema")
    audit = sub.add_parser("audit", help="the event log for auditors: its hash chain")
    add_chain_commands(audit.add_subparsers(dest="audit_command", required=True))
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGTERM, _interrupt)
    settings = Settings.from_env()
    try:
        if args.command == "serve":
            serve(settings)
        elif args.command == "migrate":
            migrate_command(settings)
        elif args.command == "rebuild":
            rebuild_command(settings, args.projections, args.mode or RebuildMode.REBUILD)
        elif args.command == "worker":
            worker_command(settings, args.name)
        elif args.command == "models":
            models_add_command(settings, args.path, args.name)
        elif args.command == "detect":
            detect_command(settings, args.video, args.model, args.ground_truth)
        elif args.command == "simulate-device":
            simulate_command(
                settings, args.session, args.fps, args.duration, args.device, args.seed
            )
        elif args.command == "device-schema":
            device_schema_command()
        elif args.command == "audit":
            chain_command(settings, args)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
