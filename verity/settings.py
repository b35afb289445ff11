"""All configuration, read from the environment once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import msgspec

DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024


MEDIA_LINK_TTL_MAX = 30 * 86_400
"""A month: a link meant for a player, not a share; also keeps `exp` within what a link's
check reads (12 digits), so every link the server makes can be verified."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    """PostgreSQL URL; None starts the embedded server under `data_dir`."""
    nats_url: str | None = None
    """NATS URL (JetStream enabled); None starts the embedded server under `data_dir`."""
    nats_user: str | None = None
    """User (and `nats_password`) Verity connects to an external NATS as; the embedded server
    makes its own service credentials under `data_dir`."""
    nats_password: str | None = None
    data_dir: Path = Path(".data")
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    nats_prefix: str = "verity"
    """Subject prefix and stream-name stem; tests use a unique one each."""
    projection_batch_size: int = 5000
    read_wait_timeout: float = 5.0
    """How long a command endpoint waits for the read models to include its write."""
    db_pool_size: int = 8
    serve_ingest: bool = True
    """`verity serve` also runs the device ingest; false where `verity worker ingest`
    processes do it, so the API process (projections, relay, WebSockets) does not compete
    with ingest for its interpreter lock."""
    serve_relay: bool = True
    """`verity serve` also relays stored events to NATS; false where one `verity worker relay`
    does (exactly one relay should run)."""
    serve_evaluator: bool = True
    """`verity serve` also runs the evaluator; false where `verity worker evaluator` does."""
    serve_video: bool = True
    """`verity serve` also runs the video worker (quality assessment of uploads); false where
    `verity worker video` processes do it."""
    serve_detector: bool = True
    """`verity serve` also runs one detector worker (runs and model inspections); false where
    `verity worker detector` processes (e.g. on GPU machines) do."""
    allow_pickle_weights: bool = False
    """Accept `.pt` weights over HTTP. A `.pt` is a pickle: loading it runs whatever code it
    holds (in the detector worker's inspection subprocess and runs), so it is off by default."""
    max_model_bytes: int = 1024 * 1024 * 1024
    """Largest weights file accepted by upload (413 above it)."""
    pipeline_wait_timeout: float = 60.0
    """How long `POST /api/detection/pipeline/run` waits for its run before answering 202."""
    relay_adopt_stream: bool = False
    """The relay publishes into an events stream that another event store (database) has fed;
    without it, it refuses and says so in its log and in /health."""
    health_max_lag: int = 50_000
    """/health is unhealthy (503) while a read model is more events than this behind the log."""
    public_url: str | None = None
    """Base URL clients use to reach this server (for video URLs); default http://host:port."""
    anonymous_role: str | None = None
    """What requests without a token act as: none, viewer, annotator, analyst or admin.
    Default: admin when `host` is a loopback address (the one-command local run), else none."""
    cors_origins: str | None = None
    """Comma-separated origins whose pages may call the API (default: the frontend's dev
    server, http://localhost:3000 and http://127.0.0.1:3000); `*` allows any."""
    allowed_hosts: str | None = None
    """Comma-separated extra `Host` names accepted (any port), besides the listen address and
    localhost/127.0.0.1/[::1] with the port (against DNS rebinding); `*` turns the check off."""
    writes_per_minute: int = 1200
    """Writes per principal (anonymous: per client address) in any minute; 0: no limit."""
    failed_auths_per_minute: int = 20
    """Failed authentications per client address in any minute before 429."""
    media_link_ttl: Annotated[int, msgspec.Meta(ge=1, le=MEDIA_LINK_TTL_MAX)] = 3600
    """Seconds a signed video URL (given where requests without a token may not read) lives
    at least; at most 1.5 times this (api/media_links.py)."""

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def models_dir(self) -> Path:
        """The content-addressed weights store (`<sha256><ext>`), beside the uploads."""
        return self.data_dir / "models"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def events_stream(self) -> str:
        return f"{self.nats_prefix.upper().replace('.', '_')}_EVENTS"

    @property
    def events_subject(self) -> str:
        return f"{self.nats_prefix}.events"

    @property
    def detections_stream(self) -> str:
        return f"{self.nats_prefix.upper().replace('.', '_')}_DETECTIONS"

    @property
    def detections_subject(self) -> str:
        """Devices publish to `<this>.<sessionId>`; poison goes to `<this>.dlq`."""
        return f"{self.nats_prefix}.detections"

    @property
    def live_subject(self) -> str:
        """Core-NATS (not stored) WebSocket messages: `<this>.<room with : as .>`."""
        return f"{self.nats_prefix}.live"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = e.get(f"VERITY_{name}")
            return value if value else None

        raw: dict[str, object] = {
            "database_url": get("DATABASE_URL"),
            "nats_url": get("NATS_URL"),
            "nats_user": get("NATS_USER"),
            "nats_password": get("NATS_PASSWORD"),
            "data_dir": get("DATA_DIR"),
            "host": get("HOST"),
            "port": get("PORT"),
            "max_upload_bytes": get("MAX_UPLOAD_BYTES"),
            "nats_prefix": get("NATS_PREFIX"),
            "projection_batch_size": get("PROJECTION_BATCH_SIZE"),
            "read_wait_timeout": get("READ_WAIT_TIMEOUT"),
            "db_pool_size": get("DB_POOL_SIZE"),
            "public_url": get("PUBLIC_URL"),
            "serve_ingest": get("SERVE_INGEST"),
            "serve_relay": get("SERVE_RELAY"),
            "serve_evaluator": get("SERVE_EVALUATOR"),
            "serve_video": get("SERVE_VIDEO"),
            "relay_adopt_stream": get("RELAY_ADOPT_STREAM"),
            "serve_detector": get("SERVE_DETECTOR"),
            "allow_pickle_weights": get("ALLOW_PICKLE_WEIGHTS"),
            "max_model_bytes": get("MAX_MODEL_BYTES"),
            "pipeline_wait_timeout": get("PIPELINE_WAIT_TIMEOUT"),
            "health_max_lag": get("HEALTH_MAX_LAG"),
            "anonymous_role": get("ANONYMOUS_ROLE"),
            "cors_origins": get("CORS_ORIGINS"),
            "allowed_hosts": get("ALLOWED_HOSTS"),
            "writes_per_minute": get("WRITES_PER_MINUTE"),
            "failed_auths_per_minute": get("FAILED_AUTHS_PER_MINUTE"),
            "media_link_ttl": get("MEDIA_LINK_TTL"),
        }
        given = {k: v for k, v in raw.items() if v is not None}
        data_dir = Path(str(given.pop("data_dir", ".data"))).expanduser().resolve()
        try:
            return msgspec.structs.replace(
                msgspec.convert(given, cls, strict=False), data_dir=data_dir
            )
        except msgspec.ValidationError as err:
            msg = f"Invalid VERITY_* setting: {err}"
            raise SystemExit(msg) from err
