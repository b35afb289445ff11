"""The ground-truth rule lives once, in domain/ground_truth.py, and every evaluation path uses
it: the evaluation handlers (via commands.evaluation_inputs) and the evaluator worker."""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest

import commands.evaluation_inputs
import workers.evaluator
from domain.annotations import AnnotationState, Source
from domain.ground_truth import counts_as_ground_truth

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("domain", "commands", "projections", "formats", "api", "workers", "verity")


@dataclass(frozen=True)
class Row:
    source: str
    validated: bool
    deleted: bool


def expected(source: str, validated: bool, deleted: bool) -> bool:
    human = source in ("manual", "imported")
    return not deleted and (human or (source == "detector" and validated))


@pytest.mark.parametrize(
    ("source", "validated", "deleted"),
    list(itertools.product([*Source, *(s.value for s in Source)], [False, True], [False, True])),
)
def test_the_rule_over_every_source_review_and_deletion(
    source: str, validated: bool, deleted: bool
) -> None:
    assert counts_as_ground_truth(Row(source, validated, deleted)) is expected(
        str(source), validated, deleted
    )


def test_an_unknown_source_never_counts() -> None:
    assert not counts_as_ground_truth(Row("model-x", validated=True, deleted=False))


def test_a_domain_annotation_state_is_read_by_the_rule() -> None:
    state = AnnotationState(
        id=uuid4(),
        video_id=uuid4(),
        version=1,
        frame_number=0,
        timestamp=0.0,
        end_timestamp=None,
        vru_type="pedestrian",
        box=None,
        occluded=False,
        truncated=False,
        difficult=False,
        validated=False,
        deleted=False,
        source=Source.DETECTOR,
        detection_id="d1",
        annotator=None,
        notes=None,
    )
    assert not counts_as_ground_truth(state)


def test_every_evaluation_path_uses_the_one_rule() -> None:
    assert commands.evaluation_inputs.counts_as_ground_truth is counts_as_ground_truth
    assert workers.evaluator.counts_as_ground_truth is counts_as_ground_truth
    defined = [
        str(path.relative_to(ROOT))
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and "ground_truth" in node.name
        and node.name.startswith(("counts", "is_"))
    ]
    assert defined == ["domain/ground_truth.py"]
