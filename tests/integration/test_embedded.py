"""The embedded servers are real, keep their data across restarts, and leave no process behind."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import psycopg
import pytest

from verity.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    EmbeddedServerError,
    socket_dir_for,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
STREAM = "EMBEDDED_TEST"


STARTUP_BOUND = 300.0
"""Seconds a child may take to start both servers before a test gives up: it waits for the
child's report that they answer, so this only bounds a hang (initdb and both readiness waits
allow up to ~150 s by design)."""
EXIT_BOUND = 120.0
"""Seconds an interrupted child may take to exit: its atexit hook stops NATS (up to 10 s) and
PostgreSQL (up to 35 s, then SIGKILL) by design, and a busy machine stretches each step."""


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A temp dir outside pytest's: run as root, postgres runs as another user, and any pytest
    session starting meanwhile (another checkout's, say) resets the root of pytest's temp
    dirs to mode 0700, locking the server out of its data mid-test. Whatever a failed test
    left running on it is killed before it is removed."""
    path = Path(tempfile.mkdtemp(prefix="verity-embedded-"))
    try:
        yield path
    finally:
        _kill_processes_referencing(path)
        shutil.rmtree(path, ignore_errors=True)


def _referencing(*paths: Path) -> Iterator[tuple[int, str, str]]:
    """(pid, command line, cwd) of live processes whose command line or working directory
    mentions one of `paths`."""
    needles = [str(p) for p in paths]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        if any(n in cmdline or cwd.startswith(n) for n in needles) and _alive(int(entry.name)):
            yield int(entry.name), cmdline.strip(), cwd


def _processes_referencing(*paths: Path) -> list[str]:
    return [f"pid {pid}: {cmdline} (cwd {cwd})" for pid, cmdline, cwd in _referencing(*paths)]


def _kill_processes_referencing(path: Path) -> None:
    """SIGKILL what a failed test left behind on `path`: a server (its own process group, so
    with its children) or a child python (in pytest's group, so alone)."""
    for pid, _, _ in list(_referencing(path)):
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                children.add(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def _wait_dead(pids: set[int], timeout: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while (alive := {p for p in pids if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


async def _stream_messages(url: str) -> list[bytes]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        return [
            (await js.get_msg(STREAM, seq)).data or b"" for seq in range(1, info.state.messages + 1)
        ]
    finally:
        await nc.close()


def _system_identifier(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("select system_identifier from pg_control_system()").fetchone()
    assert row is not None
    return int(row[0])


async def test_servers_work_keep_their_data_and_leave_nothing_running(tmp_path: Path) -> None:
    pg, mq = EmbeddedPostgres(tmp_path), EmbeddedNats(tmp_path)
    try:
        pg_url = pg.start()
        nats_url = mq.start()
        assert pg_url.startswith("postgresql://postgres@/verity?host=")
        assert nats_url.startswith("nats://127.0.0.1:")
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table kept (note text)")
            conn.execute("insert into kept values ('first run')")
        first_id = _system_identifier(pg_url)

        other_url = pg.create_database("verity_other")
        assert pg.create_database("verity_other") == other_url  # idempotent
        with psycopg.connect(other_url) as conn:
            assert conn.execute("select current_database()").fetchone() == ("verity_other",)

        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=["embedded.>"])
        ack = await js.publish("embedded.test", b"hello")
        assert (await js.get_msg(STREAM, ack.seq)).data == b"hello"
        await nc.close()

        assert EmbeddedPostgres(tmp_path / "elsewhere").attach() is None  # nobody runs one there
        beside_pg, beside_mq = EmbeddedPostgres(tmp_path), EmbeddedNats(tmp_path)
        assert beside_pg.attach() == pg_url and beside_mq.attach() == nats_url
        assert beside_pg.owner == os.getpid() == beside_mq.owner
        beside_pg.stop()
        beside_mq.stop()  # forgets them: the owner's servers keep running
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("select count(*) from kept").fetchone() == (1,)
        assert (await _stream_messages(nats_url)) == [b"hello"]

        assert pg.pid is not None
        assert mq.pid is not None
        server_pids = {pg.pid, mq.pid, *_children(pg.pid)}
        assert len(server_pids) > 3  # postmaster, its auxiliary processes, nats-server
    finally:
        mq.stop()
        pg.stop()

    assert _wait_dead(server_pids, timeout=0.5) == set()
    assert _processes_referencing(tmp_path, pg.socket_dir) == []
    assert (tmp_path / "postgres.log").stat().st_size > 0
    assert (tmp_path / "nats.log").stat().st_size > 0

    pg, mq = EmbeddedPostgres(tmp_path), EmbeddedNats(tmp_path)
    try:
        pg_url = pg.start()
        assert _system_identifier(pg_url) == first_id  # same cluster: no second initdb
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("select note from kept").fetchall() == [("first run",)]
        assert await _stream_messages(mq.start()) == [b"hello"]
    finally:
        mq.stop()
        pg.stop()
    assert _processes_referencing(tmp_path, pg.socket_dir) == []


def test_long_data_dir_gets_a_short_socket_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * 60) / ("e" * 60)
    socket_dir = socket_dir_for(data_dir)
    assert not socket_dir.is_relative_to(data_dir)
    assert socket_dir == socket_dir_for(data_dir)  # stable, so URLs survive restarts
    with EmbeddedPostgres(data_dir) as pg:
        assert pg.socket_dir == socket_dir
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    assert _processes_referencing(data_dir, socket_dir) == []


def test_second_owner_of_a_data_dir_is_refused(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path), pytest.raises(EmbeddedServerError, match="already in use"):
        EmbeddedNats(tmp_path).start()
    assert _processes_referencing(tmp_path) == []


def test_startup_failure_reports_the_log_tail(tmp_path: Path) -> None:
    with EmbeddedPostgres(tmp_path):
        pass
    with (tmp_path / "pgdata" / "postgresql.conf").open("a") as conf:
        conf.write("\nno_such_setting = 1\n")
    with pytest.raises(EmbeddedServerError, match="postgres exited") as failure:
        EmbeddedPostgres(tmp_path).start()
    assert "no_such_setting" in str(failure.value)
    assert "postgres.log" in str(failure.value)
    assert _processes_referencing(tmp_path) == []


_OWNER_SCRIPT = """
import json, sys, threading, time
from pathlib import Path
from verity.embedded import EmbeddedNats, EmbeddedPostgres

data_dir, where = Path(sys.argv[1]), sys.argv[2]
servers = [EmbeddedPostgres(data_dir), EmbeddedNats(data_dir)]
if where == "thread":  # no PDEATHSIG from a worker thread: servers outlive a killed parent
    worker = threading.Thread(target=lambda: [s.start() for s in servers])
    worker.start()
    worker.join()
else:
    for s in servers:
        s.start()
print(json.dumps([s.pid for s in servers]), flush=True)
time.sleep(600)
"""


def _start_and_kill_owner(
    data_dir: Path, where: str, sig: signal.Signals = signal.SIGKILL
) -> set[int]:
    """Run the servers in a child python, wait for its report that they answer, send it `sig`
    and wait for it to exit; return the server pids. The child never outlives this call."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT, str(data_dir), where],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        assert owner.stdout is not None
        ready, _, _ = select.select([owner.stdout], [], [], STARTUP_BOUND)
        assert ready, f"servers not started within {STARTUP_BOUND:.0f}s"
        line = owner.stdout.readline()  # one whole line, flushed at once
        assert line, "owner process died before starting the servers"
        pids = set(json.loads(line))
        owner.send_signal(sig)
        owner.wait(EXIT_BOUND)
    finally:
        if owner.poll() is None:  # failed above: the tmp_path fixture kills its servers
            owner.kill()
            owner.wait()
    return pids


def test_killed_parent_takes_its_servers_down(tmp_path: Path) -> None:
    pids = _start_and_kill_owner(tmp_path, "main")
    assert _wait_dead(pids) == set()
    assert _processes_referencing(tmp_path) == []
    with EmbeddedPostgres(tmp_path) as pg, psycopg.connect(pg.url) as conn:  # stale pid file
        assert conn.execute("select 1").fetchone() == (1,)


def test_interrupted_parent_stops_its_servers_at_exit(tmp_path: Path) -> None:
    # started off the main thread, so no PDEATHSIG: only the atexit hook can stop them
    pids = _start_and_kill_owner(tmp_path, "thread", signal.SIGINT)
    assert _wait_dead(pids, timeout=10.0) == set()  # the exit waited for them: only reaping left
    assert _processes_referencing(tmp_path) == []


async def test_servers_orphaned_by_a_dead_owner_are_replaced(tmp_path: Path) -> None:
    orphans = _start_and_kill_owner(tmp_path, "thread")
    try:
        assert all(_alive(pid) for pid in orphans)
        pg, mq = EmbeddedPostgres(tmp_path), EmbeddedNats(tmp_path)
        with pg, mq, psycopg.connect(pg.url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            assert {pg.pid, mq.pid}.isdisjoint(orphans)
            assert _wait_dead(orphans, timeout=0.5) == set()
            nc = await nats.connect(mq.url)
            await nc.close()
    finally:
        for pid in orphans:  # only if the code under test failed to
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert _processes_referencing(tmp_path) == []


# --------------------------------------------------------------------------- non-root


_NON_ROOT_SCRIPT = """
import json, os, sys
from pathlib import Path
import psycopg
from verity.embedded import EmbeddedNats, EmbeddedPostgres

with EmbeddedPostgres(Path(sys.argv[1])) as pg, EmbeddedNats(Path(sys.argv[1])) as mq:
    with psycopg.connect(pg.url) as conn:
        one = conn.execute("select 1").fetchone()[0]
    owners = [os.stat(f"/proc/{pid}").st_uid for pid in (pg.pid, mq.pid)]
    print(json.dumps({"one": one, "owners": owners, "uid": os.getuid()}))
"""


@pytest.fixture
def nobody_dir() -> Iterator[tuple[pwd.struct_passwd, Path]]:
    if os.geteuid() != 0:
        pytest.skip("switching to an unprivileged user needs root")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user")
    data_dir = Path(tempfile.mkdtemp(prefix="verity-nonroot-"))  # pytest-of-<user> is 0700
    os.chown(data_dir, nobody.pw_uid, nobody.pw_gid)
    yield nobody, data_dir
    shutil.rmtree(data_dir)


def _python_for(user: pwd.struct_passwd, env: dict[str, str]) -> str:
    """An interpreter `user` can run with our packages (ours may sit under root's home)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, shutil.which(version, path=os.defpath)):
        if candidate is None:
            continue
        try:
            probe = subprocess.run(
                [candidate, "-c", "import psycopg, nats, verity.embedded"],
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=[],
                env=env,
                cwd="/",
                capture_output=True,
                check=False,
            )
        except PermissionError:  # e.g. a venv python linked into root's home
            continue
        if probe.returncode == 0:
            return candidate
    pytest.skip(f"no {version} that user {user.pw_name} can run")


def test_runs_as_an_ordinary_user(nobody_dir: tuple[pwd.struct_passwd, Path]) -> None:
    nobody, data_dir = nobody_dir
    paths = sysconfig.get_paths()
    env = {
        "PATH": os.defpath,
        "HOME": str(data_dir),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), paths["purelib"], paths["platlib"]]),
    }
    python = _python_for(nobody, env)
    result = subprocess.run(
        [python, "-c", _NON_ROOT_SCRIPT, str(data_dir)],
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"one": 1, "owners": [nobody.pw_uid] * 2, "uid": nobody.pw_uid}
    assert _processes_referencing(data_dir) == []


def test_restarts_after_a_crash_without_touching_unrelated_processes(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    pg.start()
    assert pg.pid is not None
    os.killpg(pg.pid, signal.SIGKILL)  # postmaster and children die; postmaster.pid stays
    pg.stop()
    pid_file = tmp_path / "pgdata" / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    with subprocess.Popen(["sleep", "60"]) as bystander:  # a live process with a "recycled" pid
        try:
            pid_file.write_text("\n".join([str(bystander.pid), *lines[1:]]) + "\n")
            with EmbeddedPostgres(tmp_path) as again, psycopg.connect(again.url) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
            assert bystander.poll() is None
        finally:
            bystander.kill()
    assert _processes_referencing(tmp_path) == []
