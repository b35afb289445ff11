"""Reading and writing the zip formats (YOLO, Pascal VOC) without trusting the archive.

An archive's headers say how large each member is; a zip bomb lies or is honest about a huge
size. So the member index is bounded before zipfile builds it, and each member is inflated in
chunks whose bytes are counted as they come: past MAX_ENTRY_BYTES, MAX_UNCOMPRESSED_BYTES or
MAX_COMPRESSION_RATIO the import stops (ImportTooLarge), whatever the headers said. Members are
read one at a time, so at most one member is ever held.
"""

from __future__ import annotations

import io
import posixpath
import struct
import zipfile
import zlib
from types import TracebackType

from formats.import_limits import (
    MAX_ARCHIVE_ENTRIES,
    MAX_COMPRESSION_RATIO,
    MAX_ENTRY_BYTES,
    MAX_UNCOMPRESSED_BYTES,
    RATIO_FLOOR,
    FormatError,
    ImportTooLarge,
    Refusal,
)

_CENTRAL_SIGNATURE = b"PK\x01\x02"
"""Starts every central directory record; their count bounds the index zipfile builds."""
_CHUNK = 64 * 1024
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
"""Methods inflated with a bounded output (zipfile inflates bzip2/lzma chunks unbounded)."""
_BROKEN = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    ValueError,  # also UnicodeDecodeError of a member name
    struct.error,
    zlib.error,
    NotImplementedError,
    RuntimeError,
)
"""What zipfile raises for a damaged or unusual archive."""


def _safe(name: str) -> bool:
    if not name:  # a damaged index (zipfile's own is_dir() fails on it)
        return False
    if name.startswith(("/", "\\")) or "\\" in name or ":" in name.split("/", 1)[0]:
        return False
    parts = posixpath.normpath(name).split("/")
    return ".." not in parts and "\x00" not in name and not posixpath.isabs(name)


class BoundedZip:
    """An uploaded archive whose members are read one at a time, every byte counted."""

    def __init__(self, data: bytes) -> None:
        if data.count(_CENTRAL_SIGNATURE) > MAX_ARCHIVE_ENTRIES:
            raise ImportTooLarge(
                f"file: the archive has more than {MAX_ARCHIVE_ENTRIES} members "
                "(MAX_ARCHIVE_ENTRIES)"
            )
        try:
            self._archive = zipfile.ZipFile(io.BytesIO(data))
        except _BROKEN as err:
            raise FormatError(f"file: not a readable zip archive ({err})") from None
        self._members: dict[str, zipfile.ZipInfo] = {}
        self._inflated = 0
        try:
            self._check_index()
        except BaseException:
            self._archive.close()
            raise

    def _check_index(self) -> None:
        declared = 0
        for info in self._archive.infolist():
            name = info.filename
            if not _safe(name):
                raise FormatError(
                    f"file: zip entry {name!r} escapes the archive; refused", file=name
                )
            if info.is_dir():
                continue
            if info.compress_type not in _METHODS:
                raise FormatError(
                    f"file: zip entry {name!r} uses compression method {info.compress_type}; "
                    "only stored and deflated members are read",
                    file=name,
                    kind=Refusal.UNSUPPORTED,
                )
            if info.flag_bits & 0x1:
                raise FormatError(
                    f"file: zip entry {name!r} is encrypted", file=name, kind=Refusal.UNSUPPORTED
                )
            declared += info.file_size
            if info.file_size > MAX_ENTRY_BYTES:
                raise self._entry_too_large(name)
            if declared > MAX_UNCOMPRESSED_BYTES:
                raise self._total_too_large(name)
            self._members[name] = info

    def names(self) -> list[str]:
        """Every file's name, sorted."""
        return sorted(self._members)

    def read(self, name: str) -> bytes:
        """The member's bytes, inflated in chunks and refused the moment a cap is passed."""
        info = self._members[name]
        out = bytearray()
        try:
            with self._archive.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    out += chunk
                    self._inflated += len(chunk)
                    self._check_growth(info, len(out))
        except _BROKEN as err:
            raise FormatError(
                f"file: zip entry {name!r} is damaged or truncated ({err})", file=name
            ) from None
        return bytes(out)

    def _check_growth(self, info: zipfile.ZipInfo, size: int) -> None:
        if size > MAX_ENTRY_BYTES:
            raise self._entry_too_large(info.filename)
        if self._inflated > MAX_UNCOMPRESSED_BYTES:
            raise self._total_too_large(info.filename)
        if size > RATIO_FLOOR and size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise ImportTooLarge(
                f"file: zip entry {info.filename!r} inflates more than {MAX_COMPRESSION_RATIO} "
                "times its compressed size (MAX_COMPRESSION_RATIO)",
                file=info.filename,
            )

    @staticmethod
    def _entry_too_large(name: str) -> ImportTooLarge:
        return ImportTooLarge(
            f"file: zip entry {name!r} is larger than {MAX_ENTRY_BYTES} bytes uncompressed "
            "(MAX_ENTRY_BYTES)",
            file=name,
        )

    @staticmethod
    def _total_too_large(name: str) -> ImportTooLarge:
        return ImportTooLarge(
            f"file: the archive holds more than {MAX_UNCOMPRESSED_BYTES} bytes uncompressed "
            f"(MAX_UNCOMPRESSED_BYTES), reached at {name!r}",
            file=name,
        )

    def close(self) -> None:
        self._archive.close()

    def __enter__(self) -> BoundedZip:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def write_zip(files: dict[str, bytes]) -> bytes:
    """A deterministic archive: sorted names, fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return buffer.getvalue()
