"""`verity` command line: serve, migrate, rebuild, and the workers run alone for scale-out."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn
from uuid import UUID

from verity.device_commands import device_schema_command, ingest_command, simulate_command
from verity.evaluator_command import evaluator_command
from verity.settings import Settings


def _interrupt(signum: int, _frame: Any) -> NoReturn:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _describe(settings: Settings, database_url: str, nats_url: str) -> str:
    db = "embedded" if settings.database_url is None else "external"
    ns = "embedded" if settings.nats_url is None else "external"
    base = f"http://{settings.host}:{settings.port}"
    return (
        f"Verity serving on {base}\n"
        f"  API docs:  {base}/schema  (Swagger UI: {base}/schema/swagger)\n"
        f"  WebSocket: ws://{settings.host}:{settings.port}/ws\n"
        f"  data:      {settings.data_dir}\n"
        f"  database:  {db} {database_url}\n"
        f"  NATS:      {ns} {nats_url}\n"
        "Press Ctrl-C to stop."
    )


def serve(settings: Settings) -> None:
    import uvicorn  # noqa: PLC0415 - keep `verity migrate` light

    from api.app import create_app  # noqa: PLC0415
    from api.services import Services  # noqa: PLC0415
    from verity.bootstrap import running, servers, settle_heap  # noqa: PLC0415

    with servers(settings) as endpoints:
        print(_describe(settings, endpoints.database_url, endpoints.nats_url), flush=True)

        @contextlib.asynccontextmanager
        async def started() -> AsyncIterator[Services]:
            """The process's services; the heap is settled once they are up (this process
            only: tests build apps with `running` too and must not freeze their heaps)."""
            async with running(
                settings,
                endpoints,
                with_ingest=settings.serve_ingest,
                with_relay=settings.serve_relay,
                with_evaluator=settings.serve_evaluator,
            ) as svc:
                settle_heap()
                yield svc

        app = create_app(started, settings.uploads_dir)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)


def migrate_command(settings: Settings) -> None:
    from verity.bootstrap import servers  # noqa: PLC0415
    from verity.migrate import migrate  # noqa: PLC0415

    with servers(settings) as endpoints:
        applied = migrate(endpoints.database_url)
        print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


def rebuild_command(settings: Settings, names: Sequence[str]) -> None:
    from psycopg_pool import ConnectionPool  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    from projections.runner import ProjectionRunner  # noqa: PLC0415
    from verity.bootstrap import open_application, projection_runners, servers  # noqa: PLC0415

    with servers(settings) as endpoints:
        app = open_application(endpoints.database_url)
        with ConnectionPool(endpoints.database_url, min_size=1, max_size=8) as pool:
            runners = projection_runners(app, pool, settings.projection_batch_size)
            unknown = set(names) - {r.name for r in runners}
            if unknown:
                known = ", ".join(r.name for r in runners)
                raise SystemExit(f"unknown projection(s) {sorted(unknown)}; known: {known}")
            chosen = [r for r in runners if not names or r.name in names]

            def rebuild(line: int, runner: ProjectionRunner) -> int:
                with pool.connection() as conn:
                    row = conn.execute(
                        "SELECT count(*) FROM verity_events WHERE topic = ANY(%s)",
                        (runner.topics,),
                    ).fetchone()
                runner.reset()
                total = row[0] if row else None
                with tqdm(total=total, desc=runner.name, unit="ev", position=line) as bar:
                    return runner.catch_up(progress=bar.update)

            # Read models rebuild side by side: one's round trips overlap another's work.
            with ThreadPoolExecutor(max(1, min(len(chosen), 4))) as workers:
                list(workers.map(rebuild, range(len(chosen)), chosen))
        app.close()


def relay_command(settings: Settings) -> None:
    import nats  # noqa: PLC0415
    from psycopg_pool import ConnectionPool  # noqa: PLC0415

    from projections.notifications import NotificationLog  # noqa: PLC0415
    from verity.bootstrap import open_application, servers, settle_heap  # noqa: PLC0415
    from workers.relay import Relay  # noqa: PLC0415

    async def main(database_url: str, nats_url: str) -> None:
        app = open_application(database_url)
        nc = await nats.connect(nats_url, name="verity-relay", max_reconnect_attempts=-1)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with ConnectionPool(database_url, min_size=1, max_size=2) as pool:
            relay = Relay(
                nc,
                NotificationLog(pool),
                app.mapper.to_domain_event,
                pool,
                database_url,
                settings.events_stream,
                settings.events_subject,
                adopt_stream=settings.relay_adopt_stream,
            )
            settle_heap()
            task = asyncio.create_task(relay.run(stop))
            await stop.wait()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await nc.drain()
        app.close()

    with servers(settings) as endpoints:
        print(f"relay: {endpoints.database_url} -> {endpoints.nats_url}", flush=True)
        asyncio.run(main(endpoints.database_url, endpoints.nats_url))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="verity", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="API + projections + relay in one process")
    sub.add_parser("migrate", help="apply pending SQL migrations")
    rebuild = sub.add_parser("rebuild", help="empty read models and rebuild them from events")
    rebuild.add_argument("projections", nargs="*", help="names (default: all)")
    worker = sub.add_parser("worker", help="run one worker alone")
    worker.add_argument("name", choices=["relay", "ingest", "evaluator"])
    simulate = sub.add_parser("simulate-device", help="publish a test session's frames over NATS")
    simulate.add_argument("--session", type=UUID, required=True, help="test session id")
    simulate.add_argument("--fps", type=float, default=30.0, help="frames per second (0: max)")
    simulate.add_argument("--duration", type=float, default=60.0, help="seconds of video")
    simulate.add_argument("--device", default="sim-1", help="device id")
    simulate.add_argument("--seed", type=int, default=7)
    sub.add_parser("device-schema", help="print the device frame message JSON Schema")
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
            rebuild_command(settings, args.projections)
        elif args.command == "worker" and args.name == "ingest":
            ingest_command(settings)
        elif args.command == "worker" and args.name == "evaluator":
            evaluator_command(settings)
        elif args.command == "worker":
            relay_command(settings)
        elif args.command == "simulate-device":
            simulate_command(
                settings, args.session, args.fps, args.duration, args.device, args.seed
            )
        elif args.command == "device-schema":
            device_schema_command()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
