"""Who may call what: every route's one permission, in one table, enforced by one guard.

Keyed by the route's `operation_id` (a WebSocket route's is in its `opt`). A route missing
here is refused (403) and fails tests/unit/test_policy.py; tests/e2e/test_access_matrix.py
calls every route with every role. Adding a route's policy is one line. `OPEN` routes need
nothing (health, the root, the OpenAPI documents). Reads need READ; writes the permission of
their feature (see domain/access.py). Writes are also limited per principal (429 with
Retry-After).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
    WebSocketException,
)
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler

from api.limits import RateLimiter
from api.operation_ids import PerPath
from domain.access import Permission, Principal, anonymous, may

OPEN = None
"""No permission needed."""

R = Permission.READ
PROJECTS = Permission.MANAGE_PROJECTS
ANNOTATE = Permission.ANNOTATE
TESTS = Permission.RUN_TESTS
PROJECTIONS = Permission.OPERATE_PROJECTIONS
AUDIT = Permission.AUDIT
INGEST = Permission.INGEST
ADMIN = Permission.ADMINISTER

POLICY: dict[str, Permission | None] = {
    "root": OPEN,
    "health": OPEN,
    "openapi": OPEN,
    # projects and videos
    "createProject": PROJECTS,
    "listProjects": R,
    "updateProject": PROJECTS,
    "deleteProject": PROJECTS,
    "getProject": R,
    "listAvailableVideos": R,
    "getVideo": R,
    "deleteVideo": PROJECTS,
    "linkVideos": PROJECTS,
    "listLinkedVideos": R,
    "listProjectVideos": R,
    "uploadProjectVideo": PROJECTS,
    "uploadVideo": PROJECTS,
    "listVideos": R,
    "unlinkVideo": PROJECTS,
    "getVideoQuality": R,
    "getUploadedFile": R,  # or, without a token, a signed link to it (api/media_links.py)
    # annotations
    "listVideoAnnotations": R,
    "createAnnotation": ANNOTATE,
    "createAnnotations": ANNOTATE,
    "getAnnotation": R,
    "deleteAnnotation": ANNOTATE,
    "updateAnnotation": ANNOTATE,
    "annotationHistory": R,
    "restoreAnnotation": ANNOTATE,
    "revertAnnotation": ANNOTATE,
    "listTrackAnnotations": R,
    "listTrackFrames": R,
    "validateAnnotation": ANNOTATE,
    "exportAnnotations": R,
    "importAnnotations": ANNOTATE,
    "getAnnotationImport": R,
    "createAnnotationSession": ANNOTATE,
    "getAnnotationSession": R,
    "updateAnnotationSession": ANNOTATE,
    "getGroundTruth": R,
    "reviewCandidates": ANNOTATE,
    # test sessions, detections, runs, criteria, results
    "completeTestSession": TESTS,
    "createTestSession": TESTS,
    "listTestSessions": R,
    "executeTest": TESTS,
    "failTestSession": TESTS,
    "getTestSession": R,
    "listProjectTestSessions": R,
    "getTestSessionStatus": R,
    "startTestSession": TESTS,
    "stopTestSession": TESTS,
    "pauseTestSession": TESTS,
    "resumeTestSession": TESTS,
    "deleteTestSession": TESTS,
    "setTestSessionAllowedDevices": TESTS,
    "createDetectionEvent": INGEST,
    "createDetectionFrame": INGEST,
    "listSessionDetections": R,
    "listVideoDetections": R,
    "availableDetectorModels": R,
    "getDetectorModel": R,
    "listDetectorModels": R,
    "uploadDetectorModel": ADMIN,
    "retireDetectorModel": ADMIN,
    "cancelDetectionRun": TESTS,
    "getDetectionRun": R,
    "processGroundTruth": TESTS,
    "runDetectionPipeline": TESTS,
    "requestDetectionRun": TESTS,
    "listVideoDetectionRuns": R,
    "configureCriteria": TESTS,
    "getCriteria": R,
    "getTestSessionChart": R,
    "getTestSessionComparisons": R,
    "getTestSessionDetailedResults": R,
    "evaluateTestSession": TESTS,
    "listTestSessionEvaluations": R,
    "exportTestSessionResults": R,
    "getTestSessionResults": R,
    "batchAnalysis": R,  # computes from stored results, stores nothing
    "getConfidenceIntervals": R,
    "runStatisticalValidation": R,  # computes from stored results, stores nothing
    "getDashboardStats": R,
    "getDashboardCharts": R,
    # operations and identity
    "listProjectionFailures": R,
    "projectionStatus": R,
    "rebuildProjection": PROJECTIONS,
    "projectionRebuildStatus": R,
    # the auditor's log (tamper evidence included)
    "auditEvents": AUDIT,
    "auditAggregateHistory": AUDIT,
    "auditAggregateState": AUDIT,
    "auditChainHead": AUDIT,
    # devices (NATS users; their credentials are printed once)
    "registerDevice": ADMIN,
    "listDevices": ADMIN,
    "disableDevice": ADMIN,
    "rotateDeviceCredentials": ADMIN,
    "listPrincipals": ADMIN,
    "addPrincipal": ADMIN,
    "changePrincipalRole": ADMIN,
    "listTokens": ADMIN,
    "createToken": ADMIN,
    "revokeToken": ADMIN,
    # WebSockets: connecting needs READ; each room join is checked again (ROOMS)
    "websocket": R,
    "testExecutionSocket": R,
    "enhancedTestSocket": R,
    "enhancedTestCheck": R,
    # Socket.IO: the mount is open; its `connect` and every event are checked (SOCKET_IO),
    # since a Socket.IO client sends its token in the connect packet (`auth.token`)
    "socketio": OPEN,
}

ROOMS: dict[str, Permission] = {
    "dashboard": R,
    "project": R,
    "video": R,
    "test_session": R,
    "annotation_session": R,
    "annotation": R,
    "admin": R,
}
"""The permission to join a `/ws` room, by the part of its name before `:`."""

OPENAPI_MODULES = ("litestar._openapi.", "litestar.openapi.")
"""Litestar's own handlers of the OpenAPI documents (under /schema)."""


def policy_key(handler: BaseRouteHandler) -> str | None:
    """The name `handler` is listed under in POLICY (None: it has none to be listed by)."""
    operation_id = getattr(handler, "operation_id", None) or handler.opt.get("operation_id")
    if isinstance(operation_id, str):
        return operation_id
    if isinstance(operation_id, PerPath):  # one handler at several paths: one policy
        return operation_id.canonical
    if handler.fn.__module__.startswith(OPENAPI_MODULES):
        return "openapi"
    return None


def is_auto_options(handler: BaseRouteHandler) -> bool:
    """Litestar's own OPTIONS answer (CORS preflight): carries no data, needs nothing."""
    return isinstance(handler, HTTPRouteHandler) and handler.http_methods == {"OPTIONS"}


def required(handler: BaseRouteHandler) -> Permission | None:
    key = policy_key(handler)
    if key is None or key not in POLICY:
        where = ", ".join(sorted(handler.paths))
        raise PermissionDeniedException(detail=f"no access policy for {where}")
    return POLICY[key]


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else anonymous(None)


def check(principal: Principal, permission: Permission) -> None:
    """401 when an anonymous caller lacks it (a token may help), 403 when a principal does."""
    if may(principal, permission):
        return
    if not principal.authenticated:
        raise NotAuthorizedException(
            detail=f"authentication required: this needs permission {permission.value!r}",
            headers={"WWW-Authenticate": "Bearer"},
        )
    role = principal.role.value if principal.role else "none"
    raise PermissionDeniedException(
        detail=f"{principal.actor} (role {role}) lacks permission {permission.value!r}"
    )


def room_permission(room: str) -> Permission | None:
    return ROOMS.get(room.partition(":")[0])


SOCKET_IO: dict[str, Permission] = {
    "connect": R,
    "join_room": R,
    "leave_room": R,
    "join_test_session": R,
    "join_dashboard": R,
    "subscribe_dashboard_updates": R,
    "unsubscribe_dashboard_updates": R,
    "join_annotation_session": R,
    "annotation_progress": R,  # checked and acknowledged; nothing is stored
    "video_time_update": R,  # idem
    "ping": R,
    "start_test_session": TESTS,
    "stop_test_session": TESTS,
    "pause_test_session": TESTS,
    "resume_test_session": TESTS,
}
"""Socket.IO events by name (the server at /socket.io adds its events here, one line each);
room joins there use ROOMS like /ws."""


def socket_io_refusal(principal: Principal, event: str) -> str | None:
    """Why `principal` may not send `event` over Socket.IO (None: it may); an event without an
    entry is refused."""
    permission = SOCKET_IO.get(event)
    if permission is None:
        return f"no access policy for Socket.IO event {event[:100]!r}"
    if may(principal, permission):
        return None
    return f"{principal.actor} may not {event}: needs {permission.value}"


class Enforcement:
    """The app's one guard: the route's permission, then the per-principal write limit."""

    def __init__(self, writes_per_minute: int) -> None:
        self.writes = RateLimiter(per_minute=writes_per_minute)

    def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if is_auto_options(handler):
            return
        permission = required(handler)
        if permission is None:
            return
        principal = principal_of(connection)
        try:
            check(principal, permission)
        except HTTPException as refused:
            if connection.scope["type"] != ScopeType.WEBSOCKET:
                raise
            # a WebSocket handshake is refused with a close code: 4401, 4403
            raise WebSocketException(
                detail=refused.detail, code=4000 + refused.status_code
            ) from None
        if permission not in (Permission.READ, Permission.INGEST) and (
            wait := self.writes.take(
                principal.actor if principal.authenticated else _ip(connection)
            )
        ):
            raise TooManyRequestsException(
                detail=f"too many writes; retry in {wait} s", headers={"Retry-After": str(wait)}
            )


def _ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    client = connection.client
    return f"anonymous@{client.host if client else 'unknown'}"
