"""A build's collector settings are undone when it ends, and a settled heap stays frozen."""

from __future__ import annotations

import gc

import pytest

from projections.gc_pause import THRESHOLD, fewer_collections

pytestmark = pytest.mark.unit


def test_a_build_leaves_the_collector_as_it_found_it() -> None:
    saved, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    try:
        gc.freeze()  # as `verity serve` settles its start-up heap
        settled = gc.get_freeze_count()
        assert settled > 0
        with fewer_collections(), fewer_collections():  # overlapping builds
            assert gc.get_threshold()[0] == THRESHOLD
        assert gc.get_threshold() == saved
        assert gc.get_freeze_count() >= settled, "the settled heap was unfrozen"

        gc.unfreeze()  # a process that never froze: the build's freeze is undone
        with fewer_collections():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == saved
    finally:
        gc.set_threshold(*saved)
        if frozen_before:
            gc.freeze()
