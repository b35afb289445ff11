"""Latency summaries hold for any finite values, also ones numpy cannot split into bins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.evaluation.latency import summarize_ms

pytestmark = pytest.mark.unit


def test_values_equal_within_rounding_share_one_bin() -> None:
    # numpy raises "Too many bins for data range" for these; a `latest` re-run answered 409.
    x = np.array([1000.0000000000001, 1000.0, 1000.0])
    summary = summarize_ms(x)
    assert summary.count == 3
    assert sum(summary.histogram.counts) == 3
    assert summary.histogram.edges_ms[0] <= 1000.0 <= summary.histogram.edges_ms[-1]


def test_equal_values_and_spread_values_keep_numpy_bins() -> None:
    assert len(summarize_ms(np.array([5.0, 5.0])).histogram.counts) == 20
    spread = summarize_ms(np.arange(100, dtype=float))
    assert len(spread.histogram.counts) == 20
    assert spread.p50_ms == pytest.approx(49.5)


@given(
    st.lists(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False), min_size=1, max_size=30),
    st.floats(min_value=0, max_value=1e-3),
)
def test_any_finite_values_summarise(values: list[float], jitter: float) -> None:
    x = np.array(values + [v + jitter for v in values])
    summary = summarize_ms(x)
    assert summary.count == x.size
    assert sum(summary.histogram.counts) == x.size
