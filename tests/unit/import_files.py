"""Hostile import files built in the test, small on disk: zip bombs, lying archives, deep nests."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


def deflated_zeros(size: int) -> tuple[bytes, int]:
    """(raw deflate stream, crc32) of `size` zero bytes, compressed a MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk, crc, parts = bytes(MiB), 0, []
    for _ in range(size // MiB):
        parts.append(compressor.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    parts.append(compressor.flush())
    return b"".join(parts), crc


def crafted_zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """An archive of deflated members written exactly as given: (name, raw deflate stream,
    crc32, declared uncompressed size), the declared size in both the local header and the
    central directory, true or not."""
    out, central = bytearray(), bytearray()
    for name, raw, crc, size in members:
        encoded, offset = name.encode(), len(out)
        out += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(raw), size, len(encoded), 0
        )
        out += encoded + raw
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(raw),
            size,
            len(encoded),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += encoded
    end = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0
    )
    return bytes(out + central + end)


def zip_bomb(members: int = 8, member_size: int = 60 * MiB) -> bytes:
    """`members` label files of `member_size` zeros each, sizes declared honestly: 480 MiB in
    a ~0.5 MB archive, every member under the old 64 MiB/512 MiB caps."""
    raw, crc = deflated_zeros(member_size)
    return crafted_zip(
        [(f"labels/frame_{i:06d}.txt", raw, crc, member_size) for i in range(members)]
    )


def lying_zip(declared: int = 100, actual: int = 60 * MiB, members: int = 8) -> bytes:
    """Members that inflate to `actual` bytes while both headers declare `declared`."""
    raw, crc = deflated_zeros(actual)
    return crafted_zip([(f"labels/frame_{i:06d}.txt", raw, crc, declared) for i in range(members)])


_MEASURE = """
import json, sys
from formats import FORMATS
from formats.common import FormatError, VideoInfo

def kib(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":"))

fmt, path, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()
video = VideoInfo(id="v", name="v", width=width or None, height=width or None, fps=10.0,
                  frame_count=None)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the high-water mark restarts at the current RSS
except OSError:
    pass
before = kib("VmRSS")
try:
    parsed = FORMATS[fmt].parse(data, video)
    outcome = {"drafts": len(parsed.drafts), "issues": len(parsed.issues)}
except FormatError as err:
    outcome = {"kind": err.kind.value, "message": err.message}
print(json.dumps({"growth": (kib("VmHWM") - before) * 1024, **outcome}))
"""


def parse_in_fresh_process(
    fmt: str, data: bytes, tmp: Path, width: int = 1000, timeout: float = 120
) -> dict[str, Any]:
    """Parse `data` in a new interpreter; `growth` is its peak RSS (VmHWM, reset to the current
    RSS just before) minus its RSS just before parsing, in bytes.

    Sound as an upper bound on what parsing added: the peak rises by what was really resident,
    and should the reset be refused, subtracting the current RSS from an earlier peak can only
    overcount. It can fail: a parser that inflated the bomb or built the flood would be
    resident for it (getrusage's ru_maxrss is not used: it keeps the forking parent's size)."""
    path = tmp / f"input.{fmt}"
    path.write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, fmt, str(path), str(width)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
