"""The event log's hash chain and its export file, pure: hashing, the file's lines, the checks.

A stored event's record is its row in PostgreSQL's binary COPY field format (migration 0020):
five fields, each a 4-byte big-endian length (-1 for NULL) and the value's bytes —
notification_id (int8), originator_id (uuid, 16 bytes), originator_version (int8), topic
(UTF-8), state (the exact stored bytes). `hash = sha256(previous hash || record)`, starting from
32 zero bytes.

An export (`verity audit export`) is NDJSON, one JSON object per line, each written in one
canonical form (the verifier re-encodes every line and compares, so any byte change is seen):

1. a header: `format`, `version`, `algorithm`, `record`, `storeId`, `previousPosition` (the
   stored event just before the first exported one, null at the start of the log),
   `previousHash` (its hash; the genesis hash when null) and `check`, the header's own hash;
2. one line per event, in position order: `position`, `originatorId`, `originatorVersion`,
   `topic`, `state` (base64) and `hash` (hex);
3. a trailer: `count`, `firstPosition`, `lastPosition`, `headHash` and, optionally, an
   Ed25519 `signature` (hex) over `signed_statement(...)` with the signer's `publicKey` (hex,
   the raw 32 bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "verity-event-chain"
VERSION = 1
ALGORITHM = "sha256"
RECORD_LAYOUT = (
    "pg-binary-copy-fields(notification_id int8, originator_id uuid, originator_version int8,"
    " topic text utf8, state bytea)"
)
GENESIS = bytes(32)
HASH_BYTES = 32

_FIXED = struct.Struct(">iqi16siq")
_LENGTH = struct.Struct(">i")
_NULL = _LENGTH.pack(-1)


def record(
    position: int, originator_id: UUID, version: int, topic: str | None, state: bytes | None
) -> bytes:
    """The bytes the chain hashes for one stored event (see the module docstring)."""
    parts = [_FIXED.pack(8, position, 16, originator_id.bytes, 8, version)]
    if topic is None:
        parts.append(_NULL)
    else:
        encoded = topic.encode()
        parts += [_LENGTH.pack(len(encoded)), encoded]
    if state is None:
        parts.append(_NULL)
    else:
        parts += [_LENGTH.pack(len(state)), state]
    return b"".join(parts)


def chain_hash(previous: bytes, record_bytes: bytes | memoryview) -> bytes:
    digest = hashlib.sha256(previous)
    digest.update(record_bytes)
    return digest.digest()


class Header(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    format: str
    version: int
    algorithm: str
    record: str
    store_id: UUID
    previous_position: int | None
    previous_hash: str
    check: str = ""
    """sha256 (hex) of this header's line written with an empty `check`: the header's fields
    are not in the chain, so they carry their own check."""


class Event(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    position: int
    originator_id: UUID
    originator_version: int
    topic: str | None
    state: bytes | None
    hash: str


class Trailer(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    count: int
    first_position: int | None
    last_position: int | None
    head_hash: str
    public_key: str | None = None
    signature: str | None = None


def header_for(store_id: UUID, previous_position: int | None, previous_hash: bytes) -> Header:
    header = Header(
        format=FORMAT,
        version=VERSION,
        algorithm=ALGORITHM,
        record=RECORD_LAYOUT,
        store_id=store_id,
        previous_position=previous_position,
        previous_hash=previous_hash.hex(),
    )
    return msgspec.structs.replace(header, check=_header_check(header))


def _header_check(header: Header) -> str:
    return hashlib.sha256(line(msgspec.structs.replace(header, check=""))).hexdigest()


def signed_statement(header: Header, trailer: Trailer) -> bytes:
    """What a signature vouches for: this store's log, after `previousHash`, runs `count` events
    up to `headHash` at `lastPosition`. The chain ties every exported event to that head."""
    return (
        f"{FORMAT} v{VERSION}\nstore {header.store_id}\n"
        f"previous {header.previous_position} {header.previous_hash}\n"
        f"events {trailer.count} {trailer.first_position}..{trailer.last_position}\n"
        f"head {trailer.head_hash}\n"
    ).encode()


_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError)
"""msgspec raises UnicodeDecodeError for bytes that are not UTF-8."""
_encoder = msgspec.json.Encoder()
_header_decoder = msgspec.json.Decoder(Header)
_event_decoder = msgspec.json.Decoder(Event)
_trailer_decoder = msgspec.json.Decoder(Trailer)


def line(value: Header | Event | Trailer) -> bytes:
    """One line of an export, in its canonical form, with its newline."""
    return _encoder.encode(value) + b"\n"


@dataclass(frozen=True)
class Break:
    """Where a chain first fails: the 1-based `line` of an export (0 for a database), the
    event's `position` when it is known, what is wrong, and the last position that verified."""

    line: int
    position: int | None
    reason: str
    verified_up_to: int | None

    def describe(self) -> str:
        where = f"position {self.position}" if self.position is not None else "no position"
        at = f" (line {self.line})" if self.line else ""
        good = (
            f"; events up to position {self.verified_up_to} verify"
            if self.verified_up_to is not None
            else "; no event verifies"
        )
        return f"chain broken at {where}{at}: {self.reason}{good}"


@dataclass(frozen=True)
class Verified:
    count: int
    last_position: int | None
    head_hash: bytes
    signed_by: str | None = None


class ChainError(Exception):
    def __init__(self, found: Break) -> None:
        super().__init__(found.describe())
        self.found = found


def verify_export(
    lines: Iterable[bytes],
    *,
    public_key: bytes | None = None,
    progress: Callable[[int], object] | None = None,
) -> Verified:
    """Check an export line by line; raise ChainError naming the first bad line and position.

    With `public_key` (raw Ed25519) the trailer must carry a valid signature by that key; a
    signed export is checked against the key it names in any case. `progress` hears events.
    """
    numbered = enumerate(lines, start=1)
    first = next(numbered, None)
    if first is None:
        raise ChainError(Break(1, None, "empty file, no header", None))
    header = header_line(first[1])
    start = bytes.fromhex(header.previous_hash), header.previous_position
    stretch = verify_events(numbered, *start, progress)
    return finish(header, [stretch], public_key)


@dataclass(frozen=True)
class Stretch:
    """What consecutive lines of an export showed, checked from the hash and position of the
    line before them: their events, and the trailer if they reached it."""

    count: int
    first_position: int | None
    last_position: int | None
    head: bytes
    lines: int
    """Lines read, the trailer and any after it included."""
    trailer: tuple[int, bytes] | None = None
    after_trailer: int | None = None
    """The number of a line found after the trailer."""


def verify_events(
    numbered: Iterable[tuple[int, bytes]],
    previous: bytes,
    last: int | None,
    progress: Callable[[int], object] | None = None,
) -> Stretch:
    """Check event lines until the trailer (or the end); ChainError at the first bad one."""
    numbered = iter(numbered)
    verified: int | None = None
    count = lines = 0
    first_position: int | None = None
    for number, text in numbered:
        lines += 1
        event = event_line(text)
        if event is None:
            _trailer_line(number, text, last, verified)  # raises unless it is a trailer
            extra = next(numbered, None)
            if progress is not None:
                progress(count & 0xFFF)
            return Stretch(
                count,
                first_position,
                verified,
                previous,
                lines + (extra is not None),
                (number, text),
                extra[0] if extra is not None else None,
            )
        if last is not None and event.position <= last:
            reason = f"position {event.position} does not follow position {last}"
            raise ChainError(Break(number, event.position, reason, verified))
        data = record(
            event.position, event.originator_id, event.originator_version, event.topic, event.state
        )
        computed = chain_hash(previous, data)
        if computed.hex() != event.hash:
            reason = (
                "the event does not hash to its recorded hash from the previous one"
                " (it was altered, or an event before it removed, inserted or moved)"
            )
            raise ChainError(Break(number, event.position, reason, verified))
        previous = computed
        last = verified = event.position
        if first_position is None:
            first_position = event.position
        count += 1
        if progress is not None and not count & 0xFFF:
            progress(0x1000)
    if progress is not None:
        progress(count & 0xFFF)
    return Stretch(count, first_position, verified, previous, lines)


def finish(header: Header, stretches: list[Stretch], public_key: bytes | None) -> Verified:
    """The checks after the events: the trailer against the stretches' events (in file order,
    line numbers absolute), the signature, nothing after the trailer."""
    count, first, last, head = (
        0,
        None,
        header.previous_position,
        bytes.fromhex(header.previous_hash),
    )
    verified: int | None = None
    line_count = 1
    for stretch in stretches:
        count += stretch.count
        line_count += stretch.lines
        if stretch.count:
            first = first if first is not None else stretch.first_position
            last = verified = stretch.last_position
            head = stretch.head
        if stretch.trailer is None:
            continue
        number, text = stretch.trailer
        trailer = _trailer_line(number, text, last, verified)
        _check_trailer(number, trailer, (count, first, verified), head)
        signer = None
        if public_key is not None or trailer.signature is not None:
            signer = _check_signature(number, header, trailer, public_key, verified)
        if stretch.after_trailer is not None:
            after = stretch.after_trailer
            raise ChainError(Break(after, None, "a line after the trailer", verified))
        rest = stretches[stretches.index(stretch) + 1 :]
        if any(s.lines for s in rest):
            raise ChainError(Break(line_count + 1, None, "a line after the trailer", verified))
        return Verified(count, verified, head, signer)
    raise ChainError(
        Break(line_count + 1, None, "the file ends without a trailer (truncated?)", verified)
    )


def header_line(text: bytes) -> Header:
    try:
        header = _header_decoder.decode(text)
    except _UNREADABLE as err:
        raise ChainError(Break(1, None, f"no valid header ({err})", None)) from None
    if line(header) != _with_newline(text):
        raise ChainError(Break(1, None, "the header is not in canonical form (altered)", None))
    if (header.format, header.version, header.algorithm) != (FORMAT, VERSION, ALGORITHM):
        reason = f"unknown format {header.format} v{header.version} ({header.algorithm})"
        raise ChainError(Break(1, None, reason, None))
    if header.check != _header_check(header):
        raise ChainError(Break(1, None, "the header was altered (its check differs)", None))
    if header.previous_position is None and header.previous_hash != GENESIS.hex():
        raise ChainError(Break(1, None, "a log start with a previous hash (altered)", None))
    return header


def event_line(text: bytes) -> Event | None:
    """The event on this line; None when it is not an event (the trailer, or damage)."""
    try:
        event = _event_decoder.decode(text)
    except _UNREADABLE:
        return None
    if line(event) != _with_newline(text):
        return None
    return event


def _trailer_line(number: int, text: bytes, last: int | None, verified: int | None) -> Trailer:
    try:
        trailer = _trailer_decoder.decode(text)
    except _UNREADABLE:
        trailer = None
    if trailer is None or line(trailer) != _with_newline(text):
        position: object = None
        with contextlib.suppress(*_UNREADABLE):
            position = msgspec.json.decode(text, type=dict[str, object]).get("position")
        at = position if isinstance(position, int) else None
        reason = "an unreadable or altered line" + (f" after position {last}" if last else "")
        raise ChainError(Break(number, at, reason, verified))
    return trailer


def _check_trailer(
    number: int,
    trailer: Trailer,
    found: tuple[int, int | None, int | None],
    head: bytes,
) -> None:
    count, first, verified = found
    if (trailer.count, trailer.first_position, trailer.last_position) != found:
        reason = (
            f"the trailer lists {trailer.count} events, positions {trailer.first_position}.."
            f"{trailer.last_position}; the file holds {count}, {first}..{verified}"
            " (events removed or added at the end?)"
        )
        raise ChainError(Break(number, trailer.last_position, reason, verified))
    if trailer.head_hash != head.hex():
        reason = "the trailer's head hash is not the chain's"
        raise ChainError(Break(number, trailer.last_position, reason, verified))


def _check_signature(
    number: int,
    header: Header,
    trailer: Trailer,
    public_key: bytes | None,
    verified: int | None,
) -> str:
    if trailer.signature is None or trailer.public_key is None:
        raise ChainError(Break(number, None, "the export is not signed", verified))
    if public_key is not None and trailer.public_key != public_key.hex():
        raise ChainError(Break(number, None, "signed by another key", verified))
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(trailer.public_key))
        key.verify(bytes.fromhex(trailer.signature), signed_statement(header, trailer))
    except (InvalidSignature, ValueError):
        raise ChainError(Break(number, None, "the signature does not verify", verified)) from None
    return trailer.public_key


def _with_newline(text: bytes) -> bytes:
    return text if text.endswith(b"\n") else text + b"\n"


_POSITION = struct.Struct(">q")
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER_BYTES = len(_COPY_SIGNATURE) + 8
_COPY_END = b"\xff\xff"
_HASH_FIELD = _LENGTH.pack(HASH_BYTES)


def copy_rows(
    chunks: Iterable[bytes | bytearray | memoryview],
) -> Iterable[tuple[int, memoryview, bytes]]:
    """(position, record, stored hash) of each row of a binary COPY of the six columns
    notification_id, originator_id, originator_version, topic, state, record_hash — the first
    five fields of a row are exactly the chain's record. Expects one row per chunk, as libpq
    hands COPY data out (the file header rides on the first); anything else is an error."""
    first = True
    for chunk in chunks:
        row = memoryview(chunk)
        if first:
            first = False
            if bytes(row[: len(_COPY_SIGNATURE)]) != _COPY_SIGNATURE:
                msg = "not a binary COPY stream"
                raise ValueError(msg)
            extension = _LENGTH.unpack_from(row, len(_COPY_SIGNATURE) + 4)[0]
            row = row[_COPY_HEADER_BYTES + extension :]
            if not row:
                continue
        if row != _COPY_END:  # the end mark: the stream still ends on its own, drained
            yield _split_row(row)


def _split_row(row: memoryview) -> tuple[int, memoryview, bytes]:
    topic = _LENGTH.unpack_from(row, 46)[0]
    state_at = 50 + max(topic, 0)
    state = _LENGTH.unpack_from(row, state_at)[0]
    end = state_at + 4 + max(state, 0)
    if row[0] or row[1] != 6 or len(row) != end + 36 or row[end : end + 4] != _HASH_FIELD:
        msg = "a COPY row is not one stored event with its hash (framing changed?)"
        raise ValueError(msg)
    return _POSITION.unpack_from(row, 6)[0], row[2:end], bytes(row[end + 4 :])


def parse_record(data: memoryview | bytes) -> tuple[int, UUID, int, str | None, bytes | None]:
    """The stored event's fields from its record (the inverse of `record`)."""
    _, position, _, originator, _, version = _FIXED.unpack_from(data, 0)
    at = _FIXED.size
    topic_length = _LENGTH.unpack_from(data, at)[0]
    at += 4
    topic = None
    if topic_length >= 0:
        topic = bytes(data[at : at + topic_length]).decode()
        at += topic_length
    state_length = _LENGTH.unpack_from(data, at)[0]
    at += 4
    state = bytes(data[at : at + state_length]) if state_length >= 0 else None
    return position, UUID(bytes=originator), version, topic, state


def export_lines(
    header: Header,
    rows: Iterable[tuple[int, memoryview, bytes]],
    sign: Callable[[bytes], tuple[bytes, bytes]] | None = None,
) -> Iterable[bytes]:
    """The lines of an export: the header, each stored row as it is stored (with its stored
    hash, recomputed only by the verifier), the trailer; `sign(statement)` gives (raw public
    key, signature) to sign the head."""
    first_line = line(header)
    yield first_line
    count = 0
    first: int | None = None
    last: int | None = None
    head = header.previous_hash
    for position, data, stored in rows:
        _, originator, version, topic, state = parse_record(data)
        head = stored.hex()
        event = Event(
            position=position,
            originator_id=originator,
            originator_version=version,
            topic=topic,
            state=state,
            hash=head,
        )
        yield line(event)
        count += 1
        first = position if first is None else first
        last = position
    trailer = Trailer(
        count=count,
        first_position=first,
        last_position=last,
        head_hash=head,
    )
    if sign is not None:
        key, signature = sign(signed_statement(header, trailer))
        trailer = msgspec.structs.replace(trailer, public_key=key.hex(), signature=signature.hex())
    yield line(trailer)


def verify_copy(
    chunks: Iterable[bytes | bytearray | memoryview],
    previous: bytes = GENESIS,
    progress: Callable[[int], object] | None = None,
) -> Verified:
    """Recompute the chain over a binary COPY of the stored rows (see `copy_rows`), raising
    ChainError at the first row whose stored hash differs; `progress` hears rows checked.
    The per-row work is cut to a hash: a row's record is its bytes between the field count
    and the hash field. A row that fails is parsed in full, to tell a broken chain from a
    stream framed otherwise."""
    sha256 = hashlib.sha256
    count = 0
    last_row = b""
    iterator = iter(chunks)
    first = next(iterator, None)
    if first is None:
        return Verified(0, None, previous)
    head = bytes(first)
    if not head.startswith(_COPY_SIGNATURE):
        msg = "not a binary COPY stream"
        raise ValueError(msg)
    extension = _LENGTH.unpack_from(head, len(_COPY_SIGNATURE) + 4)[0]
    rest = head[_COPY_HEADER_BYTES + extension :]
    for chunk in itertools.chain((rest,) if rest else (), iterator):
        row = bytes(chunk)
        end = len(row) - 36
        if end < 0:
            if row == _COPY_END:
                continue
            _split_row(memoryview(row))  # raises: not a row
        digest = sha256(previous)
        digest.update(memoryview(row)[2:end])
        computed = digest.digest()
        if computed != row[end + 4 :] or row[end : end + 4] != _HASH_FIELD:
            position, _, _ = _split_row(memoryview(row))
            reason = (
                "the stored event does not hash to its recorded hash from the previous one"
                " (it was altered, or an event before it removed, inserted or moved)"
            )
            last = _POSITION.unpack_from(last_row, 6)[0] if last_row else None
            raise ChainError(Break(0, position, reason, last))
        previous = computed
        last_row = row
        count += 1
        if progress is not None and not count & 0xFFF:
            progress(0x1000)
    if progress is not None:
        progress(count & 0xFFF)
    return Verified(count, _POSITION.unpack_from(last_row, 6)[0] if last_row else None, previous)
