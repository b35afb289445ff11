"""Litestar application factory: routes, OpenAPI, error mapping; services come from outside."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from litestar import Litestar, Request
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.access import AccessConfig
from api.annotation_sessions import AnnotationSessionsController
from api.annotation_transfer import AnnotationTransferController
from api.annotations import AnnotationsController
from api.audit import AuditController
from api.audit_chain import AuditChainController
from api.auth import Authenticator, authentication_middleware
from api.browser import cors_config, host_check_middleware, websocket_origin_middleware
from api.candidate_review import CandidateReviewController
from api.criteria import CriteriaController
from api.dashboard import dashboard_charts, dashboard_stats
from api.detection_runs import DetectionRunsController
from api.detections import DetectionsController, detections_visible
from api.detector_models import DetectorModelsController
from api.devices import DevicesController
from api.errors import exception_handlers
from api.ground_truth import GroundTruthController
from api.health import health, root
from api.limits import RateLimiter
from api.media_links import MediaLinks
from api.page_sockets import enhanced_test_check, enhanced_test_socket, test_execution_socket
from api.policy import Enforcement
from api.principals import PrincipalsController
from api.projection_status import ProjectionStatusController
from api.projects import ProjectsController
from api.results import ResultsController
from api.services import Services, request_id, services_of
from api.session_lifecycle import LIFECYCLE_ROUTES
from api.socketio_gateway import SocketIOGateway
from api.test_sessions import TestSessionsController
from api.tokens import TokensController
from api.validation import ValidationController
from api.video_files import uploaded_file
from api.video_quality import VideoQualityController
from api.videos import VideosController
from api.ws import websocket_gateway
from domain.limits import JSON_BODY_MAX

ServicesFactory = Callable[[], AbstractAsyncContextManager[Services]]


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Give every HTTP request an id (X-Request-ID in, or new) and echo it in the response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        rid = request_id(Request(scope))
        header = (b"x-request-id", str(rid).encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await app(scope, receive, send_with_id)

    return middleware


def create_app(
    services_factory: ServicesFactory, uploads_dir: Path, access: AccessConfig | None = None
) -> Litestar:
    """`access` None: anonymous admin, the default origins and no Host check (in-process
    tests, whose client sends `Host: testserver.local`); `verity serve` passes its own."""
    access = access or AccessConfig()
    cors = cors_config(access.cors_origins)
    authenticator = Authenticator(
        access.anonymous_role,
        read_pool=lambda: services_of(app.state).read_pool,
        failures=RateLimiter(per_minute=access.failed_auths_per_minute),
    )
    links = MediaLinks(
        access.media_link_ttl,
        access.anonymous_role,
        read_pool=lambda: services_of(app.state).read_pool,
    )
    socketio_gateway = SocketIOGateway(cors, authenticator)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with services_factory() as services:
            app.state.services = services
            if services is not None:  # None: a test's app without a back end
                socketio_gateway.attach(services)
            try:
                yield
            finally:
                await socketio_gateway.detach()

    uploads_dir.mkdir(parents=True, exist_ok=True)
    hosts = [] if access.allowed_hosts is None else [host_check_middleware(access.allowed_hosts)]
    app = Litestar(
        route_handlers=[
            root,
            health,
            ProjectsController,
            VideosController,
            VideoQualityController,
            AnnotationsController,
            AnnotationTransferController,
            AnnotationSessionsController,
            GroundTruthController,
            CandidateReviewController,
            TestSessionsController,
            *LIFECYCLE_ROUTES,
            DetectionsController,
            DetectorModelsController,
            DetectionRunsController,
            CriteriaController,
            ResultsController,
            ValidationController,
            dashboard_stats,
            dashboard_charts,
            ProjectionStatusController,
            AuditController,
            DevicesController,
            PrincipalsController,
            TokensController,
            AuditChainController,
            websocket_gateway,
            socketio_gateway.route(),
            test_execution_socket,
            enhanced_test_socket,
            enhanced_test_check,
            uploaded_file,
        ],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        middleware=[
            *hosts,
            websocket_origin_middleware(access.cors_origins),
            request_id_middleware,
            authentication_middleware(authenticator, links),
        ],
        guards=[Enforcement(access.writes_per_minute)],
        before_request=detections_visible,
        cors_config=cors,
        openapi_config=OpenAPIConfig(
            title="Verity",
            version="0.1.0",
            description=(
                "Event-sourced validation of VRU detection models. Responses are camelCase; "
                "request bodies accept camelCase or snake_case. 4xx bodies carry `detail`."
            ),
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        debug=False,
        request_max_body_size=JSON_BODY_MAX,
    )
    app.state.authenticator = authenticator
    app.state.media_links = links
    app.state.access = access  # e.g. for Socket.IO's own allowed origins
    return app
