"""Every knob of the gateway, read from `PASEO_GATEWAY_*` environment variables (or `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.paseo.daemon.target import BadDaemonHost, parse_host
from app.paseo.daemon_config import (
    DEFAULT_DAEMON,
    DaemonSpec,
    load_daemon_file,
    parse_daemon_list,
)
from app.services.webhooks.decisions import DEFAULT_RETRY_SCHEDULE, parse_schedule

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./paseo-gateway.db"


class Settings(BaseSettings):
    """Defaults run on a laptop: SQLite file in the current directory, `paseo` on PATH."""

    model_config = SettingsConfigDict(
        env_prefix="PASEO_GATEWAY_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file.db or postgresql+asyncpg://...",
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=100,
        description=(
            "Database connections each process keeps open (as many again open for a burst). "
            "With PostgreSQL, replicas x 2 x this must stay under the server's max_connections."
        ),
    )
    migrate_on_start: bool = Field(
        default=True, description="Apply Alembic migrations when the server starts."
    )

    transport: Literal["cli", "daemon"] = Field(
        default="cli",
        description=(
            "How to talk to Paseo: `cli` spawns the paseo CLI per call (Paseo's public "
            "interface); `daemon` keeps one WebSocket to the daemon (about 20 ms a request, "
            "events pushed as they happen)."
        ),
    )
    paseo_bin: str = Field(default="paseo", description="The paseo executable (name or path).")
    paseo_host: SecretStr | None = Field(
        default=None,
        description=(
            "Daemon address (host:port, tcp://host:port?password=..., unix:///path.sock). "
            "Handed to the CLI as PASEO_HOST so a password never shows in `ps`."
        ),
    )
    paseo_home: Path | None = Field(
        default=None,
        description=(
            "The daemon's PASEO_HOME: how the CLI finds it when no host is configured (never "
            "handed on together with a host: the newest CLI refuses both, TARGET_AMBIGUOUS)."
        ),
    )

    daemons: SecretStr | None = Field(
        default=None,
        description=(
            "Several daemons: `name=address,name=address` (addresses as for PASEO_HOST). "
            "Replaces PASEO_GATEWAY_PASEO_HOST; every daemon shares the workspace roots."
        ),
    )
    daemons_file: Path | None = Field(
        default=None,
        description=(
            "Several daemons from a JSON or TOML file: a `daemons` list of {name, host, home?, "
            "workspace_roots?}; wins over PASEO_GATEWAY_DAEMONS."
        ),
    )
    daemon_check_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often each daemon is asked whether it is up (readiness, placement).",
    )

    default_provider: str = Field(
        default="claude", description="Provider for new agents when a request names none."
    )
    default_model: str | None = Field(default=None, description="Model for new agents, if any.")
    default_cwd: Path = Field(
        default_factory=Path.cwd, description="Working directory for new agents."
    )

    max_cli_processes: int = Field(
        default=4, ge=1, le=64, description="How many paseo CLI processes may run at once."
    )
    max_concurrent_turns: int = Field(
        default=4,
        ge=1,
        le=1024,
        description=(
            "Turns streaming at once; more wait as `turn.queued`. With the CLI transport each "
            "holds two paseo children (attach and send, ~200 MiB each): keep it small there."
        ),
    )
    max_prompt_bytes: int = Field(
        default=1024 * 1024, ge=1, description="Largest prompt accepted, in UTF-8 bytes."
    )
    cli_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Limit for one short CLI call (ls, inspect, stop, ...)."
    )
    turn_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="Wall-clock limit for one prompt turn."
    )
    turn_idle_timeout_seconds: float = Field(
        default=900.0, gt=0, description="A turn with no output for this long is stopped."
    )
    permission_timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "A permission request nobody answers for this long is denied by the gateway (the "
            "turn goes on as the agent takes the deny). Waiting counts neither as idle time "
            "nor against the turn's wall-clock limit."
        ),
    )
    turn_heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="How often a gateway marks its running turns alive."
    )
    turn_stale_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A running turn not marked alive for this long is taken over and recovered.",
    )
    cancel_confirm_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How long a cancel waits for Paseo to confirm before it says so and goes on.",
    )
    sse_ping_seconds: float = Field(
        default=15.0, gt=0, description="Seconds between SSE keep-alive comments."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: Literal["json", "text"] = Field(
        default="json", description="JSON lines for production, text for development."
    )

    admin_key: SecretStr | None = Field(
        default=None,
        description="Admin API key to create at first start (else one is made and printed once).",
    )
    auth_disabled: bool = Field(
        default=False,
        description="No API keys at all; then only clients on loopback addresses are served.",
    )
    public_docs: bool = Field(
        default=True, description="Serve /docs and /openapi.json without a key."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins allowed to call the API (comma-separated); none by default.",
    )
    workspace_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders agents may work in (comma-separated); default: default_cwd.",
    )
    prompt_rate_limit_per_minute: int = Field(
        default=60, ge=0, description="Prompts one API key may send per minute (0: no limit)."
    )
    stream_token_seconds: float = Field(
        default=3600.0, gt=0, description="Lifetime of the ?token= a prompt returns for its stream."
    )
    key_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description=(
            "How long a process trusts a key it found valid without reading its row again: a "
            "revoke made elsewhere (another replica, `keys revoke`) stops it within this time, "
            "one made through this process at once (0: read the row on every request)."
        ),
    )

    webhooks_allow_http: bool = Field(
        default=False,
        description="Let webhooks use http:// URLs (https only otherwise).",
    )
    webhooks_allow_private_targets: bool = Field(
        default=False,
        description=(
            "Let webhooks reach loopback, private, link-local and other non-public addresses "
            "(refused otherwise, when a webhook is made and again at each attempt)."
        ),
    )
    webhooks_retry_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE),
        description=(
            "Seconds to wait before each retry of a delivery, comma-separated; one attempt "
            "more than there are steps (default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h)."
        ),
    )
    webhooks_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="How long an attempt waits to connect and for each read of the answer.",
    )
    webhooks_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description=(
            "How often each process looks for due deliveries (those this process queued are "
            "sent at once)."
        ),
    )
    audit_retention_days: float = Field(
        default=90.0,
        gt=0,
        description="How long audit records are kept; older ones are deleted hourly.",
    )

    _daemon_specs: list[DaemonSpec] = PrivateAttr(default_factory=list)

    @field_validator("cors_origins", "workspace_roots", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("webhooks_retry_seconds", mode="before")
    @classmethod
    def _retry_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return list(parse_schedule(value))
        return value

    @field_validator("paseo_host")
    @classmethod
    def _daemon_host_form(cls, value: SecretStr | None) -> SecretStr | None:
        """Refuse at start a host no transport could reach (the message names the forms)."""
        if value is not None and value.get_secret_value().strip():
            try:
                parse_host(value.get_secret_value())
            except BadDaemonHost as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _daemons_usable(self) -> Settings:
        """The daemons, read once: a list that cannot be used stops the start, saying what to
        fix."""
        self._daemon_specs = self._read_daemon_specs()
        return self

    @property
    def workspace_root_paths(self) -> list[Path]:
        return self.workspace_roots or [self.default_cwd]

    def daemon_specs(self) -> list[DaemonSpec]:
        """The daemons to serve: the file's, the list's, or the one PASEO_HOST names. A
        daemon without roots or home of its own takes the gateway's."""
        return list(self._daemon_specs)

    def _read_daemon_specs(self) -> list[DaemonSpec]:
        if self.daemons_file is not None:
            specs = load_daemon_file(self.daemons_file)
        elif self.daemons is not None and self.daemons.get_secret_value().strip():
            specs = parse_daemon_list(self.daemons.get_secret_value())
        else:
            host = self.paseo_host.get_secret_value() if self.paseo_host else None
            specs = [DaemonSpec(name=DEFAULT_DAEMON, host=host or None)]
        roots = tuple(str(root) for root in self.workspace_root_paths)
        return [
            DaemonSpec(
                name=spec.name,
                host=spec.host,
                home=spec.home or self.paseo_home,
                workspace_roots=spec.workspace_roots or roots,
            )
            for spec in specs
        ]


@lru_cache
def get_settings() -> Settings:
    return Settings()
