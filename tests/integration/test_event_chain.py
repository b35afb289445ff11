"""The hash chain over the real event store (migration 0020): every way of appending is
chained, concurrent appenders keep one valid chain, events stored before the migration are
backfilled, and tampering done in the table as a superuser is found at the right position."""

from __future__ import annotations

import itertools
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.application import Verity
from commands.projects import CreateProject, UpdateProject, create_project, update_project
from domain.projects import CameraView, ProjectChanges, SignalType
from formats.event_chain import GENESIS, ChainError, chain_hash, record
from storage.event_chain import chain_head, hash_before, stored_rows, verify_stored
from storage.frames import PostgresFrameStore
from storage.migrate import migrate, migrations_dir
from tests.conftest import fresh_database
from tests.integration.test_frame_store import batch
from tests.unit.test_device_messages import _session_on_video
from verity.bootstrap import eventsourcing_env, open_application
from verity.chain_verify import verify_database

pytestmark = pytest.mark.integration


def new_project(app: Verity, name: str = "p") -> UUID:
    cmd = CreateProject(
        name=name,
        camera_model="m",
        camera_view=CameraView.MULTI_ANGLE,
        signal_type=SignalType.GPIO,
    )
    create_project(cmd, app)
    return cmd.id


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Verity]:
    application = open_application(database_url, pool_size=4)
    yield application
    application.close()


def stored_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM verity_events").fetchone()
        return int(row[0]) if row else 0


def test_commands_and_frame_batches_are_chained_and_the_head_is_the_newest(
    app: Verity, database_url: str
) -> None:
    project = new_project(app)
    update_project(UpdateProject(id=project, changes=ProjectChanges(name="renamed")), app)
    session = UUID(_session_on_video(app, None))
    store = PostgresFrameStore(app)
    store.record([batch(session, [uuid4(), uuid4()]), batch(session, [uuid4()])])
    with psycopg.connect(database_url) as conn:
        found = verify_stored(conn)
        head = chain_head(conn)
        (_, data, stored), *_ = list(stored_rows(conn, head.position or 0))
        previous = hash_before(conn, app.head())[1]
    assert found.count == head.count == stored_count(database_url)
    assert (found.last_position, found.head_hash) == (head.position, head.hash)
    assert (head.position, head.hash) == (app.head(), stored)
    assert chain_hash(previous, data) == stored


def test_concurrent_appenders_through_every_path_keep_one_valid_chain(
    app: Verity, database_url: str
) -> None:
    session = UUID(_session_on_video(app, None))
    before = stored_count(database_url)
    store = PostgresFrameStore(app)
    errors: list[BaseException] = []

    def commands(n: int) -> None:
        try:
            for i in range(15):
                new_project(app, f"t{n}-{i}")
        except BaseException as err:
            errors.append(err)

    def frames() -> None:
        try:
            for _ in range(15):
                store.record([batch(session, [uuid4()]), batch(session, [uuid4()])])
        except BaseException as err:
            errors.append(err)

    def raw_inserts() -> None:
        """A writer that takes no lock itself: the statement trigger serialises it."""
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                for i in range(15):
                    conn.execute(
                        "INSERT INTO verity_events (originator_id, originator_version, topic,"
                        " state) VALUES (%s, 1, 'tests:Raw', %s)",
                        (uuid4(), f"raw {i}".encode()),
                    )
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=commands, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=frames), threading.Thread(target=raw_inserts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(database_url) as conn:
        found = verify_stored(conn)
    assert found.count == stored_count(database_url) == before + 3 * 15 + 30 + 15


def test_an_insert_that_would_fork_the_chain_is_refused(app: Verity, database_url: str) -> None:
    new_project(app)
    with (
        psycopg.connect(database_url) as conn,
        pytest.raises(psycopg.DatabaseError, match="not after the chain head") as refused,
    ):
        conn.execute(
            "INSERT INTO verity_events (originator_id, originator_version, topic, state,"
            " notification_id) VALUES (%s, 1, 'tests:Early', '\\x00', 1)",
            (uuid4(),),
        )
    assert refused.value.sqlstate == "VC001"


def test_the_log_cannot_be_truncated(database_url: str) -> None:
    with (
        psycopg.connect(database_url) as conn,
        pytest.raises(psycopg.errors.RaiseException, match="append-only"),
    ):
        conn.execute("TRUNCATE verity_events")


def test_events_stored_before_the_migration_are_chained_by_it(
    postgres_admin_url: str, tmp_path: Path
) -> None:
    earlier = tmp_path / "migrations"
    earlier.mkdir()
    for path in migrations_dir().glob("*.sql"):
        if int(path.name[:4]) < 20:
            shutil.copy(path, earlier)
    with fresh_database(postgres_admin_url, "verity_chain_backfill") as url:
        migrate(url, earlier)
        old = Verity(env=eventsourcing_env(url, 2))
        ids = [new_project(old, f"old {i}") for i in range(12)]
        old.close()
        with psycopg.connect(url) as conn:
            columns = {
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = 'verity_events'"
                )
            }
        assert "record_hash" not in columns
        migrate(url)
        app = Verity(env=eventsourcing_env(url, 2))
        update_project(UpdateProject(id=ids[0], changes=ProjectChanges(name="new")), app)
        app.close()
        with psycopg.connect(url) as conn:
            found = verify_stored(conn)
            rows = list(stored_rows(conn))
        assert found.count == 13
        expected = GENESIS
        for _, data, stored in rows:  # recomputed here, from the documented record
            expected = chain_hash(expected, bytes(data))
            assert stored == expected


@pytest.fixture(scope="module")
def tamper_url(postgres_admin_url: str) -> Iterator[str]:
    """A log of ~40 events with gaps in its positions (as rolled-back writes leave them)."""
    with fresh_database(postgres_admin_url, "verity_chain_tamper") as url:
        app = open_application(url, pool_size=2)
        with psycopg.connect(url, autocommit=True) as conn:
            for i in range(20):
                project = new_project(app, f"p{i}")
                update_project(UpdateProject(id=project, changes=ProjectChanges(name=f"q{i}")), app)
                if i % 4 == 3:
                    conn.execute(  # a gap of 3, as rolled-back writes leave
                        "SELECT nextval('verity_events_notification_id_seq')"
                        " FROM generate_series(1, 3)"
                    )
        app.close()
        yield url


@pytest.fixture(scope="module")
def superuser(tamper_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(tamper_url) as conn:
        yield conn


def positions(conn: psycopg.Connection[Any]) -> list[int]:
    return [r[0] for r in conn.execute("SELECT notification_id FROM verity_events ORDER BY 1")]


def tamper(conn: psycopg.Connection[Any], kind: str, data: st.DataObject) -> int:
    """Tamper with the table (triggers off in this transaction); the position to be named."""
    conn.execute("SET LOCAL session_replication_role = replica")  # no trigger fires
    ps = positions(conn)
    i = data.draw(st.integers(0, len(ps) - 2), label="row")  # the newest: see its own test
    p = ps[i]
    if kind == "flip":
        size = conn.execute(
            "SELECT octet_length(state) FROM verity_events WHERE notification_id = %s", (p,)
        ).fetchone()
        at = data.draw(st.integers(0, size[0] - 1), label="byte")
        bit = data.draw(st.integers(0, 7), label="bit")
        conn.execute(
            "UPDATE verity_events SET state = set_byte(state, %s, get_byte(state, %s) # %s)"
            " WHERE notification_id = %s",
            (at, at, 1 << bit, p),
        )
        return p
    if kind == "version":
        conn.execute(
            "UPDATE verity_events SET originator_version = originator_version + 1000"
            " WHERE notification_id = %s",
            (p,),
        )
        return p
    if kind == "delete":
        conn.execute("DELETE FROM verity_events WHERE notification_id = %s", (p,))
        return ps[i + 1]
    if kind == "insert":
        gaps = [q + 1 for q, r in itertools.pairwise(ps) if r - q > 1]
        gap = data.draw(st.sampled_from(gaps), label="gap")
        copy = data.draw(st.sampled_from(ps), label="copy of")
        conn.execute(
            "INSERT INTO verity_events SELECT gen_random_uuid(), originator_version, topic,"
            " state, %s, record_hash FROM verity_events WHERE notification_id = %s",
            (gap, copy),
        )
        return gap
    j = data.draw(st.integers(i + 1, len(ps) - 1), label="swap with")  # swap
    for old, new in ((p, -1), (ps[j], p), (-1, ps[j])):
        conn.execute(
            "UPDATE verity_events SET notification_id = %s WHERE notification_id = %s", (new, old)
        )
    return p


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(["flip", "version", "delete", "insert", "swap"]), st.data())
def test_tampering_in_the_table_is_found_at_its_position(
    superuser: psycopg.Connection[Any], kind: str, data: st.DataObject
) -> None:
    try:
        expected = tamper(superuser, kind, data)
        with pytest.raises(ChainError) as caught:
            verify_stored(superuser)
        assert caught.value.found.position == expected
    finally:
        superuser.rollback()
    assert verify_stored(superuser).count == len(positions(superuser))
    superuser.rollback()


def test_a_removed_newest_event_shows_against_a_head_taken_before(
    superuser: psycopg.Connection[Any],
) -> None:
    """Cutting the newest events leaves a shorter valid chain: what shows it is a head noted
    earlier (GET /api/audit/chain/head, a signed export), which the shorter chain lacks."""
    noted = chain_head(superuser)
    try:
        superuser.execute("SET LOCAL session_replication_role = replica")
        superuser.execute("DELETE FROM verity_events WHERE notification_id = %s", (noted.position,))
        now = verify_stored(superuser)
        assert (now.last_position, now.head_hash) != (noted.position, noted.hash)
    finally:
        superuser.rollback()


def test_the_record_is_the_documented_layout(superuser: psycopg.Connection[Any]) -> None:
    (position, data, _), *_ = list(stored_rows(superuser))
    row = superuser.execute(
        "SELECT originator_id, originator_version, topic, state FROM verity_events"
        " WHERE notification_id = %s",
        (position,),
    ).fetchone()
    superuser.rollback()
    assert row is not None
    assert bytes(data) == record(position, row[0], row[1], row[2], bytes(row[3]))


def test_processes_checking_ranges_side_by_side_find_the_first_break(
    postgres_admin_url: str,
) -> None:
    with fresh_database(postgres_admin_url, "verity_chain_parallel") as url:
        app = open_application(url, pool_size=2)
        for i in range(30):
            new_project(app, f"p{i}")
        app.close()
        bars: list[int] = []

        def start(total: int) -> Any:
            bars.append(total)
            return lambda _n: None

        with psycopg.connect(url) as conn:
            serial = verify_stored(conn)
            head = chain_head(conn)
        parallel = verify_database(url, 3, start, (head.position or 0, head.hash))
        assert parallel == serial and bars == [head.count]
        with pytest.raises(ChainError, match="noted head"):
            verify_database(url, 3, start, (head.position or 0, bytes(32)))
        with psycopg.connect(url) as conn:  # committed: other processes must see it
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("DELETE FROM verity_events WHERE notification_id IN (14, 27)")
        with pytest.raises(ChainError) as caught:
            verify_database(url, 3, start)
        assert (caught.value.found.position, caught.value.found.verified_up_to) == (15, 13)
