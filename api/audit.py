"""The audit API: the global event log, an aggregate's history and its state as of a point.

Reads the event store itself (projections/audit_log.py), never a read model. Access is not
restricted yet: the `auditor` role arrives with the identity issue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import Stream

from api.services import Services, services_of
from projections.audit_filters import parse_as_of, parse_limit, parse_log_query, parse_position
from projections.audit_log import History, LogPage, StateAsOf, history, read_page, state_as_of
from projections.audit_log import stream_log as log_stream

NDJSON = "application/x-ndjson"
_encoder = msgspec.json.Encoder(decimal_format="string")

Text = Annotated[str | None, QueryParameter(description="See the operation's description")]


def wants_ndjson(request: Request[Any, Any, Any], format_: str | None) -> bool:
    if format_ is not None:
        return format_.strip().lower() == "ndjson"
    return NDJSON in request.headers.get("accept", "")


async def ndjson_lines(services: Services, query: Any) -> AsyncIterator[bytes]:
    async for event in log_stream(services.read_pool.connection, services.app.mapper, query):
        yield _encoder.encode(event) + b"\n"


class AuditController(Controller):
    path = "/api/audit"
    tags = ["audit"]

    @get(
        "/events",
        operation_id="auditEvents",
        summary="The global event log, oldest first, in pages (or NDJSON)",
        description=(
            "Filters: `aggregateType` (`video`, `TestSession`, ...), `aggregateId`, `eventType` "
            "(a topic, `Video.Uploaded` or `video.uploaded`), `actor`, `from`/`to` (ISO 8601). "
            "`after` is the position cursor (`nextAfter` of the previous page); `limit` 1-1000. "
            "Without `aggregateId` a page examines at most 20,000 positions, so it may come "
            "back short with `hasMore` true. `format=ndjson` or `Accept: application/x-ndjson` "
            "streams every matching event up to the newest as one JSON document a line."
        ),
        responses={200: ResponseSpec(data_container=LogPage, description="A page of events")},
    )
    async def events(
        self,
        state: State,
        request: Request[Any, Any, Any],
        after: Text = None,
        limit: Text = None,
        aggregate_type: Annotated[str | None, QueryParameter(name="aggregateType")] = None,
        aggregate_id: Annotated[str | None, QueryParameter(name="aggregateId")] = None,
        event_type: Annotated[str | None, QueryParameter(name="eventType")] = None,
        actor: Text = None,
        since: Annotated[str | None, QueryParameter(name="from")] = None,
        until: Annotated[str | None, QueryParameter(name="to")] = None,
        format_: Annotated[str | None, QueryParameter(name="format")] = None,
    ) -> Response[Any]:
        services = services_of(state)
        query = parse_log_query(
            after=after,
            limit=limit,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            event_type=event_type,
            actor=actor,
            since=since,
            until=until,
        )
        if wants_ndjson(request, format_):
            return Stream(ndjson_lines(services, query), media_type=NDJSON)
        async with services.read_pool.connection() as conn:
            page = await read_page(conn, services.app.mapper, query)
        return Response(page)

    @get(
        "/aggregates/{aggregate_id:uuid}/history",
        operation_id="auditAggregateHistory",
        summary="Every version of any aggregate: its event and the field-level changes",
    )
    async def history(
        self, state: State, aggregate_id: UUID, after: Text = None, limit: Text = None
    ) -> History:
        services = services_of(state)
        start, most = parse_position("after", after), parse_limit("limit", limit)
        async with services.read_pool.connection() as conn:
            return await history(conn, services.app.mapper, aggregate_id, start, most)

    @get(
        "/aggregates/{aggregate_id:uuid}",
        operation_id="auditAggregateState",
        summary="Any aggregate's state now, or as of a version or an ISO 8601 time (`asOf`)",
    )
    async def state(
        self,
        state: State,
        aggregate_id: UUID,
        as_of: Annotated[str | None, QueryParameter(name="asOf")] = None,
    ) -> StateAsOf:
        services = services_of(state)
        point = parse_as_of(as_of)
        async with services.read_pool.connection() as conn:
            return await state_as_of(conn, services.app.mapper, aggregate_id, point)
