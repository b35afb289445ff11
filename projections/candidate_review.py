"""Read side of candidate review: a video's detector candidates a filter selects."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from domain.annotations import Source
from domain.candidate_review import CandidateFilter

_PENDING = "video_id = %(video)s AND NOT deleted AND NOT validated AND source = %(source)s"
"""domain.candidate_review.is_candidate, in SQL."""


async def selected_candidates(
    conn: AsyncConnection[Any], video_id: UUID, chosen: CandidateFilter
) -> list[UUID]:
    """Ids of the video's candidates `chosen` selects (domain.candidate_review.selects), in
    frame order."""
    cur = await conn.execute(
        f"SELECT id FROM rm_annotations WHERE {_PENDING}"
        " AND (%(low)s::float8 IS NULL OR confidence >= %(low)s)"
        " AND (%(high)s::float8 IS NULL OR confidence <= %(high)s)"
        " AND (cardinality(%(classes)s::text[]) = 0 OR vru_type = ANY(%(classes)s))"
        " AND (%(first)s::int IS NULL OR frame_number >= %(first)s)"
        " AND (%(last)s::int IS NULL OR frame_number <= %(last)s)"
        " ORDER BY frame_number, id",
        {
            "video": video_id,
            "source": Source.DETECTOR.value,
            "low": chosen.min_confidence,
            "high": chosen.max_confidence,
            "classes": list(chosen.classes),
            "first": chosen.frame_from,
            "last": chosen.frame_to,
        },
    )
    return [row[0] for row in await cur.fetchall()]


async def pending_candidates(conn: AsyncConnection[Any], video_id: UUID) -> int:
    """How many of the video's candidates await review."""
    cur = await conn.execute(
        f"SELECT count(*) FROM rm_annotations WHERE {_PENDING}",
        {"video": video_id, "source": Source.DETECTOR.value},
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
