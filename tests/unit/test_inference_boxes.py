"""Our letterbox and NMS against ultralytics' own: the ONNX path must see and answer what
ultralytics' predictor would, or the two runtimes would disagree on real weights."""

from __future__ import annotations

import numpy as np
import pytest

from workers.inference.boxes import decode, input_shape, letterbox, to_blob
from workers.inference.offline import ultralytics

pytestmark = pytest.mark.unit

NAMES = tuple(f"c{i}" for i in range(5))


@pytest.mark.parametrize(("height", "width"), [(480, 640), (240, 320), (500, 333), (100, 90)])
def test_letterbox_matches_ultralytics(height: int, width: int) -> None:
    ultralytics()
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(height)
    frame = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    ours, placement = letterbox(frame, input_shape([frame], 160))
    theirs = LetterBox((160, 160), auto=True, stride=32)(image=frame)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)
    assert placement.width == width and placement.height == height


def test_mixed_shapes_go_square_and_blob_is_rgb_in_unit_range() -> None:
    frames = [np.zeros((48, 64, 3), np.uint8), np.full((64, 48, 3), (255, 0, 0), np.uint8)]
    blob, placements = to_blob(frames, 64)
    assert blob.shape == (2, 3, 64, 64)
    assert blob.dtype == np.float32
    assert blob[1, 2, 32, 32] == pytest.approx(1.0)  # BGR blue arrives as RGB's third plane
    assert blob[1, 0, 32, 32] == 0.0
    assert len(placements) == 2


def _synthetic_output(rng: np.random.Generator, anchors: int, size: int) -> np.ndarray:
    centres = rng.uniform(0, size, (2, anchors))
    sides = rng.uniform(4, size / 2, (2, anchors))
    scores = rng.uniform(0, 1, (len(NAMES), anchors)) ** 4
    return np.concatenate([centres, sides, scores]).astype(np.float32)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decode_matches_ultralytics_nms_and_scaling(seed: int) -> None:
    ultralytics()
    import torch
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    rng = np.random.default_rng(seed)
    frame = np.zeros((240, 320, 3), np.uint8)
    shape = input_shape([frame], 160)
    _, placement = letterbox(frame, shape)
    output = _synthetic_output(rng, 400, 160)

    ours = decode(output, placement, NAMES, confidence=0.3, iou=0.45)

    (theirs,) = non_max_suppression(torch.from_numpy(output[None]), 0.3, 0.45)
    theirs[:, :4] = scale_boxes(shape, theirs[:, :4], frame.shape[:2])
    assert len(ours) == len(theirs) > 0
    for mine, row in zip(ours, theirs.numpy(), strict=True):
        x1, y1, x2, y2, conf, cls = row
        assert mine.class_name == NAMES[int(cls)]
        assert mine.confidence == pytest.approx(conf, abs=1e-6)
        assert (mine.x, mine.y) == pytest.approx((x1, y1), abs=1e-3)
        assert (mine.x + mine.width, mine.y + mine.height) == pytest.approx((x2, y2), abs=1e-3)


def test_decode_below_threshold_is_empty_and_boxes_are_clipped() -> None:
    placement = letterbox(np.zeros((100, 100, 3), np.uint8), (128, 128))[1]
    output = np.zeros((4 + len(NAMES), 2), np.float32)
    output[:4, 0] = (0, 0, 60, 60)  # centred on the corner: half outside the frame
    output[4 + 2, 0] = 0.9
    output[4 + 1, 1] = 0.1
    (box,) = decode(output, placement, NAMES, confidence=0.25, iou=0.45)
    assert box.class_name == "c2"
    assert box.x == 0 and box.y == 0
    assert box.width == pytest.approx(30 / placement.scale, abs=1e-3)
    assert decode(output, placement, NAMES, confidence=0.95, iou=0.45) == []
