"""Typed decoders are built once, up front, for every event class of the domain."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def test_every_event_class_gets_its_decoder_before_any_event_is_read() -> None:
    """In a fresh interpreter (only the codec and the catalogue imported) the events of every
    aggregate are found, and after the prebuild none of them builds a decoder on first read."""
    code = """
import json
from commands.codec import _typed_decoder, prebuild_decoders
from domain.catalogue import event_classes
classes = event_classes()
built = prebuild_decoders(classes)
misses = _typed_decoder.cache_info().misses
for cls in classes:
    _typed_decoder(cls)
print(json.dumps({
    "built": built,
    "new_misses": _typed_decoder.cache_info().misses - misses,
    "names": sorted(c.__qualname__ for c in classes),
}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert found["built"] == len(found["names"])
    assert found["new_misses"] == 0
    for name in ("TestSession.Started", "FrameBatch.Recorded", "Video.MetadataExtracted"):
        assert name in found["names"]
