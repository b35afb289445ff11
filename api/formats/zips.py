"""Reading and writing the zip formats (YOLO, Pascal VOC) without trusting the archive."""

from __future__ import annotations

import io
import posixpath
import zipfile

from api.formats.common import FormatError

MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 512 * 1024 * 1024


def _safe(name: str) -> bool:
    if name.startswith(("/", "\\")) or "\\" in name or ":" in name.split("/", 1)[0]:
        return False
    parts = posixpath.normpath(name).split("/")
    return ".." not in parts and not posixpath.isabs(posixpath.normpath(name))


def read_zip(data: bytes) -> dict[str, bytes]:
    """Every file of the archive by name; FormatError for a broken archive or an escaping path."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise FormatError(f"file: not a readable zip archive ({err})") from None
    files: dict[str, bytes] = {}
    total = 0
    with archive:
        for info in archive.infolist():
            if not _safe(info.filename) or ".." in info.filename.split("/"):
                raise FormatError(
                    f"file: zip entry {info.filename!r} escapes the archive; refused",
                    file=info.filename,
                )
            if info.is_dir():
                continue
            total += info.file_size
            if info.file_size > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
                raise FormatError(
                    f"file: zip entry {info.filename!r} is too large", file=info.filename
                )
            try:
                files[info.filename] = archive.read(info)
            except (zipfile.BadZipFile, EOFError, OSError) as err:
                raise FormatError(
                    f"file: zip entry {info.filename!r} is damaged or truncated ({err})",
                    file=info.filename,
                ) from None
    return files


def write_zip(files: dict[str, bytes]) -> bytes:
    """A deterministic archive: sorted names, fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return buffer.getvalue()


def text_of(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise FormatError(f"file: {name} is not UTF-8 text ({err})", file=name) from None
