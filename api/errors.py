"""The one place that maps failures to HTTP statuses; every 4xx body carries `detail`."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from api.evaluation_views import NotReady
from domain.errors import Conflict, DomainError, InvalidValue, NotFound
from formats.import_limits import FormatError, Refusal
from projections.service import ReadSideTimeout

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[DomainError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (InvalidValue, 422),
]

_FILE_STATUS: dict[Refusal, int] = {
    Refusal.UNREADABLE: 400,
    Refusal.TOO_LARGE: 413,
    Refusal.UNSUPPORTED: 422,
}


def _body(detail: str, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, **{k: v for k, v in extra.items() if v is not None}}


def status_of(exc: DomainError) -> int:
    """The HTTP status of a domain error (Socket.IO reports it in its `error` event too)."""
    return next((code for cls, code in _STATUS if isinstance(exc, cls)), 400)


def domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    status = status_of(exc)
    field = getattr(exc, "field", None)
    errors = [{"field": field, "message": exc.detail}] if field else None
    return Response(_body(exc.detail, errors=errors), status_code=status)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        extra = {"errors": exc.extra}
        problems = [e for e in exc.extra if isinstance(e, dict) and "key" in e]
        named = [f"{e['key']}: {e.get('message', 'invalid')}" for e in problems]
        detail = "; ".join(named) or detail  # Litestar's own detail names only the URL
    return Response(_body(detail, **extra), status_code=exc.status_code, headers=exc.headers)


def file_refused(_: Request[Any, Any, Any], exc: FormatError) -> Response[Any]:
    """An import file refused as a whole: nothing imported, `errors` says where it broke."""
    where = {"field": "file", "message": exc.message, "line": exc.line, "file": exc.file}
    errors = [{k: v for k, v in where.items() if v is not None}]
    status = _FILE_STATUS[exc.kind]
    return Response(_body(exc.message, imported=0, errors=errors), status_code=status)


def read_side_timeout(_: Request[Any, Any, Any], exc: ReadSideTimeout) -> Response[Any]:
    """The write is stored; only the read models lag. 202 says exactly that."""
    detail = (
        f"Stored at position {exc.position}; read models are at {exc.reached} and will "
        "show it shortly"
    )
    return Response(_body(detail, position=exc.position), status_code=202)


def not_ready(_: Request[Any, Any, Any], exc: NotReady) -> Response[Any]:
    """Results that will exist, but not yet (a session still running, an evaluation being
    written): 202 with `detail`, JSON whatever the route's media type."""
    return Response(exc.body, status_code=202, media_type=MediaType.JSON)


def too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    """A JSON body nested deeper than the decoder recurses (thousands of `[`): refused."""
    return Response(_body("Request body is nested too deeply"), status_code=400)


def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(
        _body(f"Internal server error ({type(exc).__name__})"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
        media_type=MediaType.JSON,
    )


exception_handlers: Any = {
    DomainError: domain_error,
    HTTPException: http_error,
    FormatError: file_refused,
    ReadSideTimeout: read_side_timeout,
    NotReady: not_ready,
    RecursionError: too_deep,
    Exception: unexpected,
}
