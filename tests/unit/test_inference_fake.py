"""FakeDetector: known boxes for known frame numbers, the same on every run."""

from __future__ import annotations

import numpy as np
import pytest

from workers.inference import Detector, FakeDetector, RawDetection
from workers.inference.runtime import resolve_runtime

pytestmark = pytest.mark.unit

FRAME = np.zeros((8, 8, 3), np.uint8)


def boxes(n: int) -> list[RawDetection]:
    return [
        RawDetection(class_name="person", confidence=0.5 + n / 100, x=n, y=0, width=4, height=4)
    ] * (n % 3)


def test_fake_answers_by_frame_number_and_is_a_detector() -> None:
    first: Detector = FakeDetector(boxes)
    second = FakeDetector(boxes)
    assert first.detect([FRAME] * 4, frame_numbers=[10, 11, 12, 13]) == [
        boxes(10), boxes(11), boxes(12), boxes(13)
    ]  # fmt: skip
    assert second.detect([FRAME] * 2, frame_numbers=[11, 11]) == [boxes(11), boxes(11)]
    assert first.info.class_names == ("person", "bicycle", "motorcycle")


def test_fake_counts_frames_without_numbers_and_records_calls() -> None:
    fake = FakeDetector(boxes, class_names=("person",))
    assert fake.detect([FRAME] * 3) == [boxes(0), boxes(1), boxes(2)]
    assert fake.detect([FRAME] * 2) == [boxes(3), boxes(4)]
    assert fake.calls == [[0, 1, 2], [3, 4]]
    fake.close()
    with pytest.raises(RuntimeError):
        fake.detect([FRAME])


def test_fake_refuses_mismatched_frame_numbers() -> None:
    with pytest.raises(ValueError, match="2 frames but 1"):
        FakeDetector(boxes).detect([FRAME, FRAME], frame_numbers=[1])


def test_runtime_choice() -> None:
    assert resolve_runtime("auto", "cpu") == "onnx"
    assert resolve_runtime("auto", "cuda:0") == "torch"
    assert resolve_runtime("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="runtime"):
        resolve_runtime("tensorrt", "cpu")
