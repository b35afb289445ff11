"""Waiting for PostgreSQL and NATS: every process starts while they are down, and stops on a signal.

A process that needs a server it cannot reach yet says so (what, where, why; never credentials)
and tries again with capped backoff (0.5 s doubling to 5 s) instead of exiting or hanging
silently. Every wait, and every start-up step that may block, races a `stop` event set by
SIGTERM/SIGINT, so a stop request is honoured within moments at any point of the start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import nats
import psycopg
from eventsourcing.persistence import PersistenceError
from nats.aio.client import Client as NatsClient
from psycopg.conninfo import conninfo_to_dict

from storage.server import probe

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY = 0.5
"""Seconds before the second try."""
MAX_DELAY = 5.0
"""The longest pause between tries: a server that comes back is noticed within this."""
PROBE_TIMEOUT = 3
"""Seconds one connection attempt may take (a blackholed host must not hold up a stop)."""


class Stopped(Exception):
    """A stop was requested while waiting."""


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop` (on the running loop) instead of interrupting."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """The result of `work`, or Stopped (with `work` cancelled) once `stop` is set first."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Stopped
    return task.result()


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a daemon thread: unlike the default executor's, an abandoned one does
    not keep a stopping process alive until it returns."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as err:
            loop.call_soon_threadsafe(settle, None, err)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, name=getattr(fn, "__name__", "work"), daemon=True).start()
    return await future


def postgres_location(url: str) -> str:
    """host:port/dbname of a PostgreSQL URL, without user or password."""
    info = conninfo_to_dict(url)
    return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname')}"


def nats_location(url: str) -> str:
    """host:port of a NATS URL, without user, password or token."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    return f"{parts.hostname or 'localhost'}:{parts.port or 4222}"


def _reason(err: BaseException) -> str:
    """One line: the type and the first line of the message (libpq adds hints below it)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


async def wait_for(
    what: str, where: str, attempt: Callable[[], Awaitable[T]], stop: asyncio.Event
) -> T:
    """`attempt()`'s result once it succeeds, trying again after 0.5, 1, 2, 4, 5, 5, ... s."""
    delay = FIRST_DELAY
    failed = False
    while True:
        try:
            result = await until_stopped(attempt(), stop)
        except Stopped:
            raise
        except Exception as err:  # unreachable, refusing, starting up: all mean "not yet"
            failed = True
            log.warning(
                "waiting for %s at %s (%s); next try in %.1fs", what, where, _reason(err), delay
            )
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, MAX_DELAY)
                continue
            raise Stopped from None
        if failed:
            log.info("%s at %s is up", what, where)
        return result


async def keep_running(
    name: str, run: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
) -> None:
    """`run(stop)` until `stop` is set, started again (after 0.5 s doubling to 5 s) whenever it
    fails: a worker whose start-up met a server going down must not stay dead."""
    delay = FIRST_DELAY
    while not stop.is_set():
        try:
            await run(stop)
        except Exception:
            log.exception("%s failed; starting it again in %.1fs", name, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, MAX_DELAY)
        else:
            return


async def wait_for_postgres(url: str, stop: asyncio.Event) -> None:
    await wait_for("PostgreSQL", postgres_location(url), lambda: probe(url, PROBE_TIMEOUT), stop)


async def open_when_ready(
    url: str, stop: asyncio.Event, opener: Callable[[str], T], what: str = "the event store"
) -> T:
    """`opener(url)` (migrate and open, say) once PostgreSQL answers; again if it drops
    meanwhile."""
    while True:
        await wait_for_postgres(url, stop)
        try:
            return await until_stopped(in_daemon_thread(opener, url), stop)
        except (psycopg.OperationalError, PersistenceError) as err:
            log.warning(
                "could not open %s at %s (%s); waiting again",
                what,
                postgres_location(url),
                _reason(err),
            )


async def _probe_nats(url: str, credentials: Mapping[str, str]) -> None:
    errors: list[Exception] = []

    async def keep(err: Exception) -> None:
        errors.append(err)

    try:
        nc = await nats.connect(
            url,
            connect_timeout=PROBE_TIMEOUT,
            allow_reconnect=False,
            max_reconnect_attempts=1,  # 0 would mean "no limit" in its first-connect loop
            reconnect_time_wait=0,
            error_cb=keep,
            **credentials,
        )
    except nats.errors.NoServersError:
        raise (errors[-1] if errors else ConnectionError("no NATS server answered")) from None
    try:
        await nc.jetstream().account_info()  # JetStream answers too, not just the server
    finally:
        await nc.close()


async def connect_nats(
    url: str, name: str, stop: asyncio.Event, credentials: Mapping[str, str] | None = None
) -> NatsClient:
    """A client that, once connected, reconnects on its own for as long as it takes.

    `credentials`: nats-py's `user` and `password` where the server authenticates.
    nats-py's own first-connect loop (with max_reconnect_attempts=-1) retries silently and
    cannot be told to stop, so the first connection waits here; after that the client
    retries every second (reconnect_time_wait) and logs each loss and return."""
    where = nats_location(url)
    credentials = credentials or {}
    await wait_for("NATS", where, lambda: _probe_nats(url, credentials), stop)
    client: list[NatsClient] = []

    async def on_error(err: Exception) -> None:
        log.warning("%s: NATS at %s: %s", name, where, _reason(err))

    async def on_disconnected() -> None:
        if client and not (client[0].is_closed or client[0].is_draining):
            log.warning("%s: lost NATS at %s; reconnecting", name, where)

    async def on_reconnected() -> None:
        log.info("%s: reconnected to NATS at %s", name, where)

    nc = await until_stopped(
        nats.connect(
            url,
            name=name,
            connect_timeout=PROBE_TIMEOUT,
            reconnect_time_wait=1,
            max_reconnect_attempts=-1,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            **credentials,
        ),
        stop,
    )
    client.append(nc)
    return nc


async def close_nats(nc: NatsClient, timeout: float = 1.0) -> None:  # noqa: ASYNC109
    """Drain (flush what was published), but never wait long on a server that is gone."""
    try:
        await asyncio.wait_for(nc.drain(), timeout)
    except Exception:
        log.debug("NATS drain did not finish; closing", exc_info=True)
    if not nc.is_closed:
        await nc.close()
