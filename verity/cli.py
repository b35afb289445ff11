"""`verity` command line: serve, migrate, rebuild, and the workers run alone for scale-out."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, NoReturn
from uuid import UUID

from verity.audit_commands import add_audit_parsers, audit_command
from verity.detector_commands import (
    add_detector_parsers,
    detect_command,
    models_add_command,
)
from verity.device_access_commands import add_devices_parser, devices_command
from verity.device_commands import device_schema_command, simulate_command
from verity.identity_commands import add_identity_parsers, principals_command, tokens_command
from verity.rebuild_command import RebuildMode, rebuild_command
from verity.replay_command import replay_command
from verity.settings import Settings
from verity.worker_command import worker_command
from verity.worker_registry import WORKERS

GRACEFUL_SHUTDOWN_S = 5
"""How long a stop waits for open requests: a Socket.IO long-poll is held open up to 45 s by
engine.io, and a stop used to wait for every one of them."""


def _interrupt(signum: int, _frame: Any) -> NoReturn:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _describe(settings: Settings, database_url: str, nats_url: str) -> str:
    from verity.access_settings import access_config, describe_access  # noqa: PLC0415
    from verity.waiting import nats_location, postgres_location  # noqa: PLC0415

    db = "embedded" if settings.database_url is None else "external"
    ns = "embedded" if settings.nats_url is None else "external"
    if settings.nats_url is None:
        auth = "service user and registered devices only (verity devices add NAME)"
    elif settings.nats_user:
        auth = f"connecting as {settings.nats_user}"
    else:
        auth = "none configured (VERITY_NATS_USER)"
    base = f"http://{settings.host}:{settings.port}"
    return (
        f"Verity serving on {base}\n"
        f"  API docs:  {base}/schema  (Swagger UI: {base}/schema/swagger)\n"
        f"  WebSocket: ws://{settings.host}:{settings.port}/ws\n"
        f"  Socket.IO: {base}/socket.io  (the original frontend's live channel)\n"
        f"  data:      {settings.data_dir}\n"
        f"  database:  {db} {postgres_location(database_url)}\n"
        f"  NATS:      {ns} {nats_location(nats_url)}; authorization: {auth}\n"
        f"{describe_access(access_config(settings))}\n"
        "Press Ctrl-C to stop."
    )


def serve(settings: Settings) -> None:
    """The API with projections and the workers the VERITY_SERVE_* settings enable."""
    import uvicorn  # noqa: PLC0415 - keep `verity migrate` light

    from api.app import create_app  # noqa: PLC0415
    from api.services import Services  # noqa: PLC0415
    from verity.access_settings import access_config  # noqa: PLC0415
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

        app = create_app(started, settings.uploads_dir, access_config(settings))
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
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
    from verity.bootstrap import migrate_database, servers  # noqa: PLC0415

    with servers(settings) as endpoints:
        applied = migrate_database(endpoints.database_url)
        print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="API + projections + relay in one process")
    sub.add_parser("migrate", help="apply pending SQL migrations")
    rebuild = sub.add_parser(
        "rebuild", help="rebuild read models from the events beside the live ones, then swap"
    )
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
    replay = sub.add_parser(
        "replay", help="every read model as at a past position or time, in a schema of its own"
    )
    replay.add_argument("--until", required=True, help="a log position, or an ISO 8601 time")
    replay.add_argument("--schema", required=True, help="the schema to build (a new name)")
    replay.add_argument(
        "--replace", action="store_true", help="overwrite a schema an earlier replay made"
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
    add_audit_parsers(sub)
    add_devices_parser(sub)
    add_identity_parsers(sub)
    return parser


Command = Callable[[Settings, argparse.Namespace], None]
COMMANDS: dict[str, Command] = {
    "serve": lambda settings, _: serve(settings),
    "migrate": lambda settings, _: migrate_command(settings),
    "rebuild": lambda settings, args: rebuild_command(
        settings, args.projections, args.mode or RebuildMode.REBUILD
    ),
    "replay": lambda settings, args: replay_command(
        settings, args.until, args.schema, replace=args.replace
    ),
    "worker": lambda settings, args: worker_command(settings, args.name),
    "models": lambda settings, args: models_add_command(settings, args.path, args.name),
    "detect": lambda settings, args: detect_command(
        settings, args.video, args.model, args.ground_truth
    ),
    "simulate-device": lambda settings, args: simulate_command(
        settings, args.session, args.fps, args.duration, args.device, args.seed
    ),
    "device-schema": lambda _settings, _args: device_schema_command(),
    "audit": audit_command,
    "devices": devices_command,
    "principals": principals_command,
    "tokens": tokens_command,
}
"""Sub-command name -> what runs it; a new command is a parser in `_parser` and a line here."""


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGTERM, _interrupt)
    settings = Settings.from_env()
    try:
        COMMANDS[args.command](settings, args)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
