"""`verity audit ...`: the audit API's reads on the command line, through the same functions
(projections/audit_log.py) and the same input checks (projections/audit_filters.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TextIO
from uuid import UUID

import msgspec

from verity.chain_commands import add_chain_commands, chain_command
from verity.settings import Settings

_encoder = msgspec.json.Encoder(decimal_format="string")


def add_audit_parsers(sub: Any) -> None:
    """`verity audit log|history|show` (one sub-parser; further audit commands go beside)."""
    audit = sub.add_parser("audit", help="read the event store as an auditor")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    log = audit_sub.add_parser("log", help="the global event log, oldest first")
    log.add_argument("--after", help="only events after this position")
    log.add_argument("--aggregate-type", help="video, test_session, TestSession, ...")
    log.add_argument("--aggregate-id", help="one aggregate's id")
    log.add_argument("--type", dest="event_type", help="topic, Video.Uploaded or video.uploaded")
    log.add_argument("--actor", help="only events recorded as done by this actor")
    log.add_argument("--from", dest="since", help="ISO 8601 time (UTC without an offset)")
    log.add_argument("--to", dest="until", help="ISO 8601 time (UTC without an offset)")
    log.add_argument("--ndjson", action="store_true", help="one JSON document per event")
    history = audit_sub.add_parser("history", help="every version of an aggregate, with changes")
    history.add_argument("id", help="aggregate id")
    history.add_argument("--json", action="store_true", help="JSON documents, one a version")
    show = audit_sub.add_parser("show", help="an aggregate's state, now or as of a point")
    show.add_argument("id", help="aggregate id")
    show.add_argument("--as-of", help="a version (1, 2, ...) or an ISO 8601 time")
    add_chain_commands(audit_sub)  # export, verify, keygen: the log's hash chain


def audit_command(settings: Settings, args: argparse.Namespace) -> None:
    if getattr(args, "chain", None) is not None:
        chain_command(settings, args)
        return
    from domain.errors import DomainError  # noqa: PLC0415
    from verity.bootstrap import servers  # noqa: PLC0415

    commands: dict[str, Callable[[str, argparse.Namespace, TextIO], Coroutine[Any, Any, None]]]
    commands = {"log": log_command, "history": history_command, "show": show_command}
    with servers(settings) as endpoints:
        try:
            asyncio.run(commands[args.audit_command](endpoints.database_url, args, sys.stdout))
        except DomainError as err:
            raise SystemExit(f"verity audit {args.audit_command}: {err.detail}") from None
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _required_id(text: str) -> UUID:
    from domain.errors import InvalidValue  # noqa: PLC0415
    from projections.audit_filters import parse_uuid  # noqa: PLC0415

    ident = parse_uuid("id", text)
    if ident is None:
        raise InvalidValue("id", "id: an aggregate id is required")
    return ident


def _line(event: Any) -> str:
    where = f"{event.aggregate_type}/{event.aggregate_id} v{event.version}"
    return f"{event.position:>10}  {event.time}  {event.actor:<16}  {where}  {event.type}"


async def log_command(database_url: str, args: argparse.Namespace, out: TextIO) -> None:
    from psycopg_pool import AsyncConnectionPool  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    from commands.codec import MsgspecMapper  # noqa: PLC0415
    from projections.audit_filters import parse_log_query  # noqa: PLC0415
    from projections.audit_log import head_position, stream_log  # noqa: PLC0415

    query = parse_log_query(
        after=args.after,
        aggregate_type=args.aggregate_type,
        aggregate_id=args.aggregate_id,
        event_type=args.event_type,
        actor=args.actor,
        since=args.since,
        until=args.until,
    )
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        async with pool.connection() as conn:
            head = await head_position(conn)
        done = query.after
        with tqdm(total=max(head - done, 0), unit="pos", file=sys.stderr, leave=False) as bar:
            async for event in stream_log(pool.connection, MsgspecMapper(), query):
                out.write(_encoder.encode(event).decode() if args.ndjson else _line(event))
                out.write("\n")
                bar.update(event.position - done)
                done = event.position


async def history_command(database_url: str, args: argparse.Namespace, out: TextIO) -> None:
    from psycopg import AsyncConnection  # noqa: PLC0415

    from commands.codec import MsgspecMapper  # noqa: PLC0415
    from projections.audit_log import history  # noqa: PLC0415

    ident = _required_id(args.id)
    after = 0
    async with await AsyncConnection.connect(database_url) as conn:
        while True:
            page = await history(conn, MsgspecMapper(), ident, after)
            for entry in page.entries:
                if args.json:
                    out.write(_encoder.encode(entry).decode() + "\n")
                    continue
                out.write(f"{_line(entry.event)}\n")
                for change in entry.changes:
                    old = _encoder.encode(change.before).decode()
                    new = _encoder.encode(change.after).decode()
                    out.write(f"    {change.path}: {old} -> {new}\n")
            if not page.has_more:
                return
            after = page.next_after


async def show_command(database_url: str, args: argparse.Namespace, out: TextIO) -> None:
    from psycopg import AsyncConnection  # noqa: PLC0415

    from commands.codec import MsgspecMapper  # noqa: PLC0415
    from projections.audit_filters import parse_as_of  # noqa: PLC0415
    from projections.audit_log import state_as_of  # noqa: PLC0415

    ident = _required_id(args.id)
    point = parse_as_of(args.as_of)
    async with await AsyncConnection.connect(database_url) as conn:
        found = await state_as_of(conn, MsgspecMapper(), ident, point)
    out.write(msgspec.json.format(_encoder.encode(found)).decode() + "\n")
