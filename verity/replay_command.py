"""`verity replay --until POSITION|TIME --schema NAME`: every read model as it was then."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from verity.settings import Settings


def parse_until(text: str) -> int | datetime:
    """A position (a whole number) or an ISO 8601 time (UTC when it names no zone)."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        msg = f"--until: {text!r} is neither a position nor an ISO 8601 time"
        raise SystemExit(msg) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def replay_command(settings: Settings, until_text: str, schema: str, *, replace: bool) -> None:
    import psycopg  # noqa: PLC0415 - keep other commands light
    from psycopg_pool import ConnectionPool  # noqa: PLC0415
    from tqdm import tqdm  # noqa: PLC0415

    from projections.as_of import check_target, position_at, replay_into  # noqa: PLC0415
    from projections.notifications import NotificationLog  # noqa: PLC0415
    from projections.schema_build import Progress  # noqa: PLC0415
    from storage.read_model_schema import BadSchemaName  # noqa: PLC0415
    from verity.bootstrap import PROJECTIONS, open_application, servers  # noqa: PLC0415

    until = parse_until(until_text)
    with servers(settings) as endpoints:
        url = endpoints.database_url
        app = open_application(url)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                try:
                    check_target(conn, schema, replace=replace)
                except BadSchemaName as bad:
                    raise SystemExit(str(bad)) from None
                head = app.head()
                if isinstance(until, datetime):
                    position = position_at(conn, app.mapper.to_domain_event, until, head)
                    note = f" (the last event recorded by {until.isoformat()})"
                elif until > head:
                    msg = f"--until: position {until} is past the log's head ({head})"
                    raise SystemExit(msg)
                else:
                    position, note = until, ""
            with (
                ConnectionPool(url, min_size=1, max_size=4) as pool,
                tqdm(total=0, desc=f"replay into {schema}", unit="ev") as bar,
            ):

                def progress(p: Progress) -> None:
                    bar.total = p.total
                    bar.update(p.processed - bar.n)

                applied = replay_into(
                    url,
                    schema,
                    [cls() for cls in PROJECTIONS],
                    NotificationLog(pool),
                    app.mapper.to_domain_event,
                    position,
                    settings.projection_batch_size,
                    progress,
                    note,
                    processes=os.cpu_count() or 1,
                )
            print(
                f"{schema}: every read model as at position {position}{note}, {applied} events;"
                f" query it with SET search_path TO {schema}"
            )
        finally:
            app.close()
