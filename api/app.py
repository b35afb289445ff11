"""Litestar application factory: routes, OpenAPI, error mapping; services come from outside."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.annotation_sessions import AnnotationSessionsController
from api.annotation_transfer import AnnotationTransferController
from api.annotations import AnnotationsController
from api.audit_chain import AuditChainController
from api.candidate_review import CandidateReviewController
from api.criteria import CriteriaController
from api.dashboard import dashboard_charts, dashboard_stats
from api.detection_runs import DetectionRunsController
from api.detections import DetectionsController, detections_visible
from api.detector_models import DetectorModelsController
from api.errors import exception_handlers
from api.ground_truth import GroundTruthController
from api.health import health, root
from api.projection_status import ProjectionStatusController
from api.projects import ProjectsController
from api.results import ResultsController
from api.services import Services, request_id
from api.test_sessions import TestSessionsController
from api.uploads import served_name_guard
from api.validation import ValidationController
from api.video_quality import VideoQualityController
from api.videos import VideosController
from api.ws import websocket_gateway

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


def create_app(services_factory: ServicesFactory, uploads_dir: Path) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with services_factory() as services:
            app.state.services = services
            yield

    uploads_dir.mkdir(parents=True, exist_ok=True)
    return Litestar(
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
            DetectionsController,
            DetectorModelsController,
            DetectionRunsController,
            CriteriaController,
            ResultsController,
            ValidationController,
            dashboard_stats,
            dashboard_charts,
            ProjectionStatusController,
            AuditChainController,
            websocket_gateway,
            create_static_files_router(
                path="/uploads", directories=[uploads_dir], guards=[served_name_guard]
            ),
        ],
        lifespan=[lifespan],
        exception_handlers=exception_handlers,
        middleware=[request_id_middleware],
        before_request=detections_visible,
        cors_config=CORSConfig(allow_origins=["*"]),
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
    )
