"""How much one annotation import may hold: every cap of the import path, in one place.

An import file is parsed in memory, so each cap below bounds what one file can make the server
hold. Value ranges (frame numbers, coordinates, text) are `domain.limits`; these are the sizes.

Memory bound of one import, above the server's baseline (worst cases measured by
tests/unit/test_import_limits.py in a fresh process, peak RSS):

- the upload itself: at most MAX_IMPORT_BYTES (32 MiB), received into a spooled file and read
  once into memory;
- a zip archive: its member index (at most MAX_ARCHIVE_ENTRIES, about 0.6 kB each, < 35 MB), and
  one member at a time, counted while it inflates, so never more than MAX_ENTRY_BYTES (4 MiB)
  of one member whatever its headers claim; all members together at most
  MAX_UNCOMPRESSED_BYTES (64 MiB, a CPU bound: they are never held at once);
- a JSON or XML document: at most MAX_ITEMS values or elements+attributes (each at most ~80
  bytes as a Python object, so < 250 MB whatever their shape) nested at most MAX_NESTING deep;
- the checked rows: at most MAX_IMPORT_ROWS drafts and issues (~0.5 kB each, < 50 MB).

So one import holds well under 512 MB at its peak, most of it only for the adversarial shapes;
a zip bomb of any ratio costs one member's 4 MiB. Every refusal names its limit: 413 for a size
or count, 422 for nesting or a compression method we do not inflate.
"""

from __future__ import annotations

MiB = 1024 * 1024

MAX_IMPORT_BYTES = 32 * MiB
"""The uploaded file as sent (compressed, for an archive)."""
MAX_IMPORT_ROWS = 100_000
"""Annotation rows (valid or not) in one file; larger sets are split into several imports."""
MAX_ARCHIVE_ENTRIES = 50_000
"""Members of one zip archive (YOLO, Pascal VOC: one per annotated frame)."""
MAX_ENTRY_BYTES = 4 * MiB
"""One archive member once inflated (a per-frame label file is a few kB)."""
MAX_UNCOMPRESSED_BYTES = 64 * MiB
"""All members of one archive once inflated."""
MAX_COMPRESSION_RATIO = 100
"""Inflated / compressed size of a member past RATIO_FLOOR; text compresses ~5-20x."""
RATIO_FLOOR = 1 * MiB
"""Members smaller than this are not ratio-checked (tiny files compress oddly)."""
MAX_NESTING = 16
"""JSON arrays/objects or XML elements inside each other (the formats need 4)."""
MAX_ITEMS = 3_000_000
"""JSON values, or XML elements plus attributes, in one document (~20 per COCO row)."""


class FormatError(Exception):
    """The file as a whole cannot be read (bad JSON/XML/zip, over a cap): 400 unless `status`
    says otherwise, with where it broke."""

    def __init__(
        self, message: str, line: int | None = None, file: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.file = file
        self.status = status


class ImportTooLarge(FormatError):
    """The file is over one of the caps above: 413, naming the cap."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message, file=file, status=413)


class ImportTooDeep(FormatError):
    """The document nests deeper than MAX_NESTING (or uses a feature we refuse): 422."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message, file=file, status=422)
