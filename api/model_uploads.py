"""Streamed weights uploads into the content-addressed model store (`<sha256><ext>`).

Nothing here loads the weights: a `.pt` is a pickle, and unpickling runs code. The file is
only sniffed (a zip or pickle header for `.pt`, a protobuf field for `.onnx`, a YAML mapping
with `backbone` and `head` for an ultralytics `.yaml`), so a file that is no model format at
all is refused at once (422); whether it loads is the detector worker's inspection's to say.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from uuid import uuid4

import anyio
import anyio.to_thread
import yaml  # type: ignore[import-untyped]
from litestar import Request
from multipart import (  # type: ignore[import-untyped]
    MultipartError,
    MultipartSegment,
    PushMultipartParser,
)

from api.inputs import InputError
from api.uploads import extension_of, multipart_boundary, safe_display_name
from domain.detector_models import PICKLE_EXTENSIONS, WEIGHT_EXTENSIONS

MAX_FORM_FIELD = 64 * 1024
"""Bytes of one text field beside the file (name, version, classMap, ...)."""
YAML_MAX_BYTES = 1024 * 1024
"""An architecture file is a few kB; one much larger is read no further when sniffed."""


@dataclass(frozen=True)
class ReceivedWeights:
    path: Path
    original_name: str
    extension: str
    size: int
    sha256: str
    fields: dict[str, str]


@dataclass
class _Form:
    """The multipart body: the `file` field streamed to disk, small text fields kept."""

    path: Path
    limit: int
    allow_pickle: bool
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    original: str = ""
    handle: BinaryIO | None = None
    fields: dict[str, str] = field(default_factory=dict)
    _current: str | None = None
    _text: bytearray = field(default_factory=bytearray)

    def feed(self, item: MultipartSegment | bytes | bytearray | None) -> None:
        if isinstance(item, MultipartSegment):
            self._current = item.name
            if item.name == "file" and self.handle is None:
                self._open(item.filename or "")
            self._text.clear()
        elif item is None:
            if self._current not in (None, "file"):
                self.fields[str(self._current)] = self._text.decode("utf-8", "replace")
            self._current = None
        elif self._current == "file" and self.handle is not None:
            self.size += len(item)
            if self.size > self.limit:
                msg = f"file: weights exceed the size limit of {self.limit} bytes"
                raise InputError(msg, "file", status_code=413)
            self.digest.update(item)
            self.handle.write(item)
        elif self._current is not None:
            self._text.extend(item)
            if len(self._text) > MAX_FORM_FIELD:
                msg = f"{self._current}: longer than {MAX_FORM_FIELD} bytes"
                raise InputError(msg, self._current)

    def _open(self, client_name: str) -> None:
        self.original = safe_display_name(client_name)
        ext = extension_of(self.original)
        if ext not in WEIGHT_EXTENSIONS:
            allowed = ", ".join(WEIGHT_EXTENSIONS)
            raise InputError(f"file: {ext or 'no extension'} is not one of {allowed}", "file")
        if ext in PICKLE_EXTENSIONS and not self.allow_pickle:
            raise InputError(
                "file: .pt weights are pickles (loading one runs the code it holds), so they"
                " are not accepted over HTTP unless VERITY_ALLOW_PICKLE_WEIGHTS is set;"
                " upload .onnx or an ultralytics .yaml, or use `verity models add`",
                "file",
                status_code=403,
            )
        self.handle = self.path.open("wb")

    def close(self) -> None:
        if self.handle is not None and not self.handle.closed:
            self.handle.close()


def sniff(path: Path, extension: str) -> str | None:
    """Why the file is not a model of its format at all, or None when it may be one."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if extension == ".pt":
        if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
            return None
        return "not a PyTorch checkpoint (neither a zip archive nor a pickle)"
    if extension == ".onnx":
        return None if head[:1] == b"\x08" else "not an ONNX model (no ir_version field first)"
    return _sniff_yaml(path)


def _sniff_yaml(path: Path) -> str | None:
    if path.stat().st_size > YAML_MAX_BYTES:
        return f"an architecture .yaml over {YAML_MAX_BYTES} bytes"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        return f"not YAML ({type(err).__name__})"
    if not isinstance(doc, dict) or "backbone" not in doc or "head" not in doc:
        return "not an ultralytics model architecture (no `backbone` and `head`)"
    return None


def stored_name(sha256: str, original_name: str) -> str:
    """`<sha256><ext>`; an architecture keeps its stem after the hash, because ultralytics
    reads the model's scale from the file name (`yolov8s.yaml` is the s-scale)."""
    ext = extension_of(original_name)
    if ext in (".yaml", ".yml"):
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(original_name).stem)[:64]
        return f"{sha256}-{stem}.yaml"
    return f"{sha256}{ext}"


async def receive_weights(
    request: Request[Any, Any, Any], models_dir: Path, limit: int, allow_pickle: bool
) -> ReceivedWeights:
    """Stream the multipart `file` to the store as `<sha256><ext>`; 422 for a non-model file."""
    boundary = multipart_boundary(request, limit)
    await anyio.Path(models_dir).mkdir(parents=True, exist_ok=True)
    form = _Form(models_dir / f".incoming-{uuid4()}", limit, allow_pickle)
    try:
        with PushMultipartParser(boundary, max_segment_count=16) as parser:
            async for chunk in request.stream():
                for item in parser.parse(chunk):
                    form.feed(item)
            for _ in parser.parse(b""):
                pass
        form.close()
        if form.handle is None:
            raise InputError("file: field is required (multipart field named 'file')", "file")
        if form.size == 0:
            raise InputError("file: the uploaded file is empty", "file")
        ext = extension_of(form.original)
        why = await anyio.to_thread.run_sync(sniff, form.path, ext)
        if why is not None:
            raise InputError(f"file: {why}", "file")
        sha = form.digest.hexdigest()
        final = models_dir / stored_name(sha, form.original)
        await anyio.Path(form.path).replace(final)
        return ReceivedWeights(final, form.original, ext, form.size, sha, form.fields)
    except MultipartError as err:
        raise InputError(f"file: malformed multipart body ({err})", "file", 400) from None
    finally:
        form.close()
        await anyio.Path(form.path).unlink(missing_ok=True)
