"""`verity audit export|verify|keygen`: the event log's hash chain for auditors.

`export` writes the events with their hashes (formats/event_chain.py describes the file),
optionally signing the head with an Ed25519 key; `verify FILE` recomputes an export (needs no
database), `verify --database` the stored log. A broken chain exits 1 naming the first bad
position; the message goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verity.settings import Settings

BROKEN = 1
"""Exit status of a verify that found the chain broken (or an export it could not check)."""


def add_chain_commands(audit: Any) -> None:
    """Register export, verify and keygen under `verity audit` (`audit` is its subparsers)."""
    export = audit.add_parser("export", help="write the events with their chain hashes (NDJSON)")
    export.add_argument("--out", type=Path, required=True, help="file to write")
    export.add_argument("--from", dest="first", type=_position, help="first position (default 1)")
    export.add_argument("--to", dest="last", type=_position, help="last position (default head)")
    export.add_argument("--sign", type=Path, metavar="KEY", help="Ed25519 private key (PEM)")
    export.set_defaults(chain=export_command)

    verify = audit.add_parser("verify", help="recompute the hash chain of an export or the store")
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path, help="an export to check")
    source.add_argument("--database", action="store_true", help="check the stored event log")
    verify.add_argument(
        "--expect-head",
        type=_head,
        metavar="POSITION:HASH",
        help="with --database: the log must still hold this head, noted earlier (GET"
        " /api/audit/chain/head); shows the newest events cut off, which leave a valid chain",
    )
    verify.add_argument(
        "--jobs",
        type=_jobs,
        default=min(4, os.cpu_count() or 1),
        help="processes checking position ranges (or stretches of an export) side by side",
    )
    verify.add_argument(
        "--public-key",
        metavar="KEY",
        help="the export must be signed by this Ed25519 key (hex, or a file holding it)",
    )
    verify.set_defaults(chain=verify_command)

    keygen = audit.add_parser("keygen", help="make an Ed25519 key pair to sign exports")
    keygen.add_argument("--out", type=Path, required=True, help="private key file (PEM, 0600)")
    keygen.set_defaults(chain=keygen_command)


def _position(text: str) -> int:
    value = int(text)
    if not 1 <= value < 2**63:
        msg = f"a position is 1 to 2^63-1, not {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _jobs(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        msg = f"--jobs is 1 to 64, not {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _head(text: str) -> tuple[int, bytes]:
    position, _, digest = text.partition(":")
    try:
        found = _position(position), bytes.fromhex(digest)
    except ValueError:
        found = (0, b"")
    if len(found[1]) != 32:
        msg = f"POSITION:HASH with a 64-hex-digit hash, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return found


def chain_command(settings: Settings, args: argparse.Namespace) -> None:
    run: Callable[[Settings, argparse.Namespace], None] = args.chain
    run(settings, args)


def export_command(settings: Settings, args: argparse.Namespace) -> None:
    import psycopg  # noqa: PLC0415 - keep other commands light
    from tqdm import tqdm  # noqa: PLC0415

    from formats.event_chain import export_lines, header_for  # noqa: PLC0415
    from storage.event_chain import count_between, hash_before, stored_rows  # noqa: PLC0415
    from storage.migrate import migrate  # noqa: PLC0415
    from storage.store_identity import store_id  # noqa: PLC0415
    from verity.bootstrap import servers  # noqa: PLC0415

    first = args.first or 1
    last = args.last or 2**63 - 1
    if first > last:
        raise SystemExit(f"--from {first} is after --to {last}")
    sign = _signer(args.sign) if args.sign else None
    partial = args.out.with_name(args.out.name + ".partial")
    with servers(settings) as endpoints:
        migrate(endpoints.database_url)
        with psycopg.connect(endpoints.database_url) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot
            previous_position, previous_hash = hash_before(conn, first)
            header = header_for(store_id(conn), previous_position, previous_hash)
            total = count_between(conn, first, last)
            with (
                partial.open("wb", buffering=2**20) as out,
                tqdm(total=total, unit="ev", desc="export") as bar,
            ):
                for text in export_lines(
                    header, _counted(stored_rows(conn, first, last), bar.update), sign
                ):
                    out.write(text)
    partial.replace(args.out)
    print(f"exported {total} event(s) to {args.out}" + (" (signed)" if sign else ""))


def _counted(rows: Any, tick: Callable[[int], object]) -> Any:
    n = 0
    for n, row in enumerate(rows, start=1):
        yield row
        if not n & 0xFFF:
            tick(0x1000)
    tick(n & 0xFFF)


def verify_command(settings: Settings, args: argparse.Namespace) -> None:
    from tqdm import tqdm  # noqa: PLC0415

    from formats.event_chain import ChainError, Verified  # noqa: PLC0415

    try:
        if args.database:
            if args.public_key:
                raise SystemExit("--public-key checks a signed export, not the database")
            found: Verified = _verify_database(settings, args, tqdm)
        else:
            if args.expect_head:
                raise SystemExit("--expect-head checks the database; an export has its trailer")
            found = _verify_file(args, tqdm)
    except ChainError as err:
        print(err.found.describe(), file=sys.stderr)
        raise SystemExit(BROKEN) from None
    signed = f", signed by {found.signed_by}" if found.signed_by else ""
    print(
        f"chain intact: {found.count} event(s) up to position {found.last_position},"
        f" head {found.head_hash.hex()}{signed}"
    )


def _verify_database(settings: Settings, args: argparse.Namespace, bar_type: Any) -> Any:
    from verity.bootstrap import servers  # noqa: PLC0415
    from verity.chain_verify import verify_database  # noqa: PLC0415

    with servers(settings) as endpoints, contextlib.ExitStack() as stack:

        def start(total: int) -> Callable[[int], object]:
            bar = stack.enter_context(bar_type(total=total, unit="ev", desc="verify"))
            return bar.update  # type: ignore[no-any-return]

        return verify_database(endpoints.database_url, args.jobs, start, args.expect_head)


def _verify_file(args: argparse.Namespace, bar_type: Any) -> Any:
    from verity.chain_verify import verify_file  # noqa: PLC0415

    with contextlib.ExitStack() as stack:

        def start(total: int | None) -> Callable[[int], object]:
            bar = stack.enter_context(bar_type(total=total, unit="ev", desc="verify"))
            return bar.update  # type: ignore[no-any-return]

        return verify_file(args.file, args.jobs, start, _public_key(args.public_key))


def keygen_command(_settings: Settings, args: argparse.Namespace) -> None:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SystemExit(f"{args.out} exists; keygen never overwrites a key") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )
    args.out.with_name(args.out.name + ".pub").write_text(public + "\n")
    print(f"private key: {args.out} (keep it secret)\npublic key:  {public}")


def _signer(path: Path) -> Callable[[bytes], tuple[bytes, bytes]]:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: PLC0415
        Ed25519PrivateKey,
    )

    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"{path} is not an Ed25519 private key")
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return lambda statement: (public, key.sign(statement))


def _public_key(given: str | None) -> bytes | None:
    if given is None:
        return None
    text = Path(given).read_text().strip() if Path(given).is_file() else given.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SystemExit("--public-key: 64 hex digits (or a file holding them)") from None
    if len(key) != 32:
        raise SystemExit("--public-key: an Ed25519 public key is 32 bytes (64 hex digits)")
    return key
