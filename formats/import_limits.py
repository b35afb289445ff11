"""How much one annotation import may hold: every cap of the import path, in one place.

An import file is parsed in memory, so each cap below bounds what one file can make the server
hold. Value ranges (frame numbers, coordinates, text) are `domain.limits`; these are the sizes.

Memory bound of one import, above the server's baseline:

- the upload: at most MAX_IMPORT_BYTES (32 MiB), spooled to a temporary file by the multipart
  parser and read once into memory;
- parsing it: at most ~256 MB, whatever the file. A zip member is inflated in counted chunks, so
  an archive costs its index (MAX_ARCHIVE_ENTRIES) plus one member (MAX_ENTRY_BYTES) whatever its
  headers claim; a JSON or XML document at most MAX_ITEMS values or elements+attributes (~85
  bytes each at worst) nested at most MAX_NESTING deep; text at most MAX_TEXT_LINES lines; and
  the checked rows at most MAX_IMPORT_ROWS. Measured peak RSS growth of a parse in a fresh
  process: 2.5M empty XML elements 211 MB, 2.5M two-letter JSON strings 184 MB, a 100k-row COCO
  file 109 MB, a 50k-member YOLO zip 67 MB, a 480 MB zip bomb or an archive whose headers lie
  < 1 MB (refused). tests/unit/test_import_limits.py asserts the hostile ones.
- at most PARALLEL_PARSES imports parse at once (the others wait), so the server holds at most
  PARALLEL_PARSES x (32 MiB + 256 MB) for imports, under 600 MB.

Every refusal names its cap, and says which kind of refusal it is (`Refusal`): over a size or
count, or a feature we do not read (nesting, DTDs, a compression method).
"""

from __future__ import annotations

from enum import StrEnum

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
MAX_ITEMS = 2_500_000
"""JSON values, or XML elements plus attributes, in one document (~17 per COCO or Verity JSON
row, ~14 per CVAT box)."""
MAX_XML_TOKEN = 256 * 1024
"""Longest XML tag (with its attributes) or other single token: a CVAT box tag is ~150 bytes."""
MAX_XML_NAMES = 1_000
"""Distinct element and attribute names in one XML document (the formats use ~20); each new
name costs memory in the parser, so a flood of invented names is refused early."""
PARALLEL_PARSES = 2
"""Imports parsed at the same time; further ones wait their turn."""
MAX_TEXT_LINES = 2 * MAX_IMPORT_ROWS
"""Lines of one text file (MOT, one YOLO label file), blank ones included."""


class Refusal(StrEnum):
    """Why a file is refused as a whole; the HTTP layer maps each to one status (api/errors.py)."""

    UNREADABLE = "unreadable"
    """Not the format it claims: bad JSON, XML, zip or text encoding (400)."""
    TOO_LARGE = "too_large"
    """Over a size or count cap above (413)."""
    UNSUPPORTED = "unsupported"
    """Readable, but uses what we refuse: nesting past MAX_NESTING, DTDs or entities, a zip
    compression method we do not inflate, encryption (422)."""


class FormatError(Exception):
    """The file as a whole cannot be read, with why (`kind`) and where it broke."""

    def __init__(
        self,
        message: str,
        line: int | None = None,
        file: str | None = None,
        kind: Refusal = Refusal.UNREADABLE,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.file = file
        self.kind = kind


class ImportTooLarge(FormatError):
    """The file is over one of the caps above, naming the cap."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message, file=file, kind=Refusal.TOO_LARGE)


class ImportTooDeep(FormatError):
    """The document nests deeper than MAX_NESTING (or uses a feature we refuse)."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message, file=file, kind=Refusal.UNSUPPORTED)
