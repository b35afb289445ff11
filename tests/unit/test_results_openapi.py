"""The evaluation endpoints' OpenAPI documents what the figures mean."""

from __future__ import annotations

import pytest
from litestar import Litestar

from api.criteria import CriteriaController
from api.dashboard import dashboard_charts, dashboard_stats
from api.results import ResultsController
from api.validation import ValidationController

pytestmark = pytest.mark.unit


def test_openapi_builds_and_defines_accuracy_scale_and_ground_truth() -> None:
    app = Litestar(
        [
            ResultsController,
            ValidationController,
            CriteriaController,
            dashboard_stats,
            dashboard_charts,
        ]
    )
    paths = app.openapi_schema.to_schema()["paths"]
    detailed = paths["/api/test-sessions/{session_id}/detailed-results"]["get"]["description"]
    assert "TP/(TP+FP+FN)" in detailed and "Fractions 0-1" in detailed
    assert "validated" in detailed and "interpolated" in detailed
    results = paths["/api/test-sessions/{session_id}/results"]["get"]["description"]
    assert "percentages 0-100" in results
    assert "operationId" in paths["/api/validation/statistical/run"]["post"]
    assert "/api/projects/{project_id}/criteria/configure" in paths
    assert "/api/dashboard/stats" in paths and "/api/dashboard/charts" in paths
