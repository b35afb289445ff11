"""The range of every value Verity accepts: one place, used by every edge.

An event once stored is forever, so the edge (HTTP DTOs, the device decoder, file imports) may
only accept what every later stage can hold: a read-model column (`integer` is 32-bit,
`bigint` 64-bit, `text` holds no NUL), a NATS message (1 MB), a float that JSON can write back.
Each bound below names the narrowest stage that holds it. These are msgspec constraints, so a
value out of range fails decoding with a message that names the field (HTTP 422, dead-letter
reason `invalid`) and the bounds appear in the OpenAPI document and the device JSON Schema.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

INT32_MAX = 2**31 - 1
"""Largest PostgreSQL `integer`: frame numbers and counts live in such columns."""
INT64_MAX = 2**63 - 1
"""Largest PostgreSQL `bigint`: device sequence numbers."""

MAX_FRAME_NUMBER = 100_000_000
"""Frame numbers and frame counts: ~38 days of video at 30 fps, far inside `integer`."""
MAX_COUNT = 1_000_000_000
"""Generic non-negative counts (totals, skips) that end in an `integer` column."""
MAX_COORDINATE = 1_000_000.0
"""Pixel coordinates and sizes: finite and far beyond any sensor (a 1e308 box is refused)."""
MAX_SECONDS = 10_000_000.0
"""Times within a video (~115 days); finite, so they survive JSON and `double precision`."""
MAX_SKIP = 1_000_000_000
"""Offsets of list endpoints: PostgreSQL's OFFSET takes a bigint, pages never go that far."""
MAX_PAGE = 10_000
"""Most rows a list endpoint returns in one page."""
MAX_FRAME_RATE = 10_000
"""Frames per second of a camera or video: far beyond any real sensor."""
MAX_TOLERANCE_MS = 60_000
"""Widest time window in which a detection may match ground truth (a minute)."""

RENDITION_MAX_SIDE = 4096
"""Widest or tallest video the worker transcodes for browsers (H.264 level 5.1's reach)."""
RENDITION_MAX_PIXELS = 4096 * 2304
"""Largest frame area transcoded (4K); bigger uploads keep only their original."""
RENDITION_MAX_SECONDS = 4 * 3600
"""Longest video transcoded: hours of CPU on two cores beyond that."""
RENDITION_MAX_FRAMES = 4 * 3600 * 60
"""Most frames transcoded (4 h at 60 fps), also enforced while decoding: a container may lie."""
RENDITION_MAX_BYTES = 8 * 2**30
"""Largest rendition written; the transcode stops and records why beyond it."""

MAX_NAME = 200
MAX_IDENTIFIER = 128
MAX_LABEL = 64
MAX_TEXT = 10_000
"""Descriptions, notes, reasons: well under NATS's 1 MB once relayed inside an event."""
MAX_LIST = 1_000
"""Most items in a list-valued field of one command (tags, ids, detections of one frame)."""

_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
"""No control character at all: names and ids are one line of printable text."""
_TEXT_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""Free text may hold tab, line feed and carriage return, nothing else below space (no NUL)."""

FrameNumber = Annotated[int, Meta(ge=0, le=MAX_FRAME_NUMBER)]
FrameCount = Annotated[int, Meta(ge=0, le=MAX_FRAME_NUMBER)]
PositiveFrameCount = Annotated[int, Meta(ge=1, le=MAX_FRAME_NUMBER)]
Count = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
SequenceNumber = Annotated[int, Meta(ge=0, le=INT64_MAX)]
Skip = Annotated[int, Meta(ge=0, le=MAX_SKIP)]
Limit = Annotated[int, Meta(ge=1, le=MAX_PAGE)]

Coordinate = Annotated[float, Meta(ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
Size = Annotated[float, Meta(ge=0, le=MAX_COORDINATE)]
Seconds = Annotated[float, Meta(ge=0, le=MAX_SECONDS)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
FrameRate = Annotated[float, Meta(gt=0, le=MAX_FRAME_RATE)]
WholeFrameRate = Annotated[int, Meta(ge=1, le=MAX_FRAME_RATE)]
"""A frame rate in whole frames per second (a project's camera)."""
ToleranceMs = Annotated[int, Meta(ge=0, le=MAX_TOLERANCE_MS)]

Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME, pattern=_NO_CONTROL)]
"""A person-given name: one line, 1-200 characters."""
OptionalName = Annotated[str, Meta(max_length=MAX_NAME, pattern=_NO_CONTROL)]
Identifier = Annotated[str, Meta(min_length=1, max_length=MAX_IDENTIFIER, pattern=_NO_CONTROL)]
"""An id a client or device chooses (device ids, track ids, model versions)."""
OptionalIdentifier = Annotated[str, Meta(max_length=MAX_IDENTIFIER, pattern=_NO_CONTROL)]
"""An id where the original's clients send "" for none."""
Label = Annotated[str, Meta(min_length=1, max_length=MAX_LABEL, pattern=_NO_CONTROL)]
Text = Annotated[str, Meta(max_length=MAX_TEXT, pattern=_TEXT_CONTROL)]
"""Free text (descriptions, notes, reasons): up to 10,000 characters, no NUL."""

MAX_FRAME_STRIDE = 10_000
"""Every n-th frame of a detection run: one frame in ~5 minutes at 30 fps, at the sparsest."""
MAX_INFERENCE_BATCH = 256
"""Frames a detector is handed at once: far beyond what one GPU's memory takes at 640 px."""
MAX_INPUT_SIZE = 4096
"""Largest square side a detector is run at (pixels)."""
MAX_MODEL_CLASSES = 1_000
"""Class names of one model kept in its events (COCO has 80; an Objects365 model 365)."""
MAX_SHA256 = 64

FrameStride = Annotated[int, Meta(ge=1, le=MAX_FRAME_STRIDE)]
InferenceBatch = Annotated[int, Meta(ge=1, le=MAX_INFERENCE_BATCH)]
InputSize = Annotated[int, Meta(ge=32, le=MAX_INPUT_SIZE)]
ComputeDevice = Annotated[str, Meta(pattern=r"^(auto|cpu|cuda(:[0-9]{1,2})?)$")]
"""`auto`, `cpu`, `cuda` or `cuda:N`: where a detector runs."""

MAX_AUDIT_PAGE = 1_000
"""Most events one page of the audit log (or one aggregate's history) returns."""
DEFAULT_AUDIT_PAGE = 100
MAX_AUDIT_SCAN = 20_000
"""Most log positions one page of the audit log examines when a filter has no index to use
(aggregate type, event type, actor, time): a page may come back short, or empty, with a cursor
to go on from, but no request reads an unbounded part of the log."""
MAX_AUDIT_SCAN_BYTES = 32 * 2**20
"""Most stored state one page of the audit log reads (about 250 frame batches): a page whose
filter matches few events stops there with a cursor, rather than decode a gigabyte."""
MAX_AUDIT_LIST_ITEMS = 100
"""Lists longer than this are shown in audit diffs as a count and a digest, not item by item."""
MAX_AUDIT_PAYLOAD_BYTES = 64 * 1024
"""Event payloads larger than this (encoded) are summarised in the audit log, not shown whole."""
AUDIT_CLOCK_SLACK_SECONDS = 600.0
"""How far an event's time may run ahead of a later position's: it is taken when the command
decides, its position when the commit takes the table lock. A time filter starts its scan this
much earlier (and ends it this much later) and then filters exactly."""
MAX_DEVICE_NAME = 64
"""A registered device's id: its NATS user name and one subject token, so a short word."""
DEVICE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
"""Letters, digits, `_` and `-`: safe as a NATS user, a subject token and an inbox prefix
(`.`, `*`, `>` and spaces would change what a permission matches)."""
DeviceName = Annotated[
    str, Meta(min_length=1, max_length=MAX_DEVICE_NAME, pattern=DEVICE_NAME_PATTERN)
]
MAX_ALLOWED_DEVICES = 100
"""Most device ids a test session names as allowed (checked per frame from a set in memory)."""
AllowedDeviceIds = Annotated[list[Identifier], Meta(max_length=MAX_ALLOWED_DEVICES)]
PRINCIPAL_NAME_MAX = 100
"""Longest principal, token or device name (recorded on every event as part of the actor)."""
TOKEN_MAX_DAYS = 3650
"""Longest a token may live: ten years; a token without expiry is also possible."""
JSON_BODY_MAX = 4 * 1024 * 1024
"""Largest JSON request body (413 above it): a device frame fits NATS's 1 MB, the other JSON
bodies are forms; a field too long within it (a 2 MB description) still gets its 422 naming
the field. Uploads stream under their own limits; bulk routes name theirs."""
BULK_BODY_MAX = 64 * 1024 * 1024
"""Largest body of a bulk JSON route (many annotations at once): ~200k annotations."""
