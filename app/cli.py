"""The `paseo-gateway` command: `serve` (default), `migrate`, `check`, and `keys ...`."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys
import uuid

from pydantic import ValidationError

from app.settings import Settings, get_settings


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = _settings_or_exit()
    _configure_logging(settings)
    if args.command == "migrate":
        print(_migrate(settings.database_url))
    elif args.command == "keys":
        sys.exit(asyncio.run(_keys(args, settings)))
    elif args.command == "check":
        sys.exit(asyncio.run(_check(settings)))
    else:
        _serve(
            settings,
            getattr(args, "host", "127.0.0.1"),
            getattr(args, "port", 8000),
            getattr(args, "workers", 1),
        )


def _settings_or_exit() -> Settings:
    """The settings, or each problem with them on one line (never the values: a daemon
    address may hold a password) and exit status 2."""
    try:
        return get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            where = "".join(str(part) for part in error["loc"][:1])
            name = f"PASEO_GATEWAY_{where.upper()}: " if where else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            print(f"paseo-gateway: bad configuration: {name}{message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paseo-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the HTTP server (the default)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1); they share the DB"
    )
    commands.add_parser("migrate", help="apply database migrations and exit")
    commands.add_parser(
        "check", help="check config, database, paseo binary and daemon; say how to fix"
    )
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--name", required=True, help="what the key is for, e.g. ci")
    create.add_argument(
        "--scope",
        action="append",
        choices=["read", "prompt", "webhooks", "admin"],
        required=True,
        help="repeat for several; prompt and webhooks include read, admin includes all",
    )
    listing = keys.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--revoked", action="store_true", help="include revoked keys")
    revoke = keys.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id", type=uuid.UUID, help="the key's id, as `keys list` shows")
    return parser


def _configure_logging(settings: Settings) -> None:
    from app.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    if settings.auth_disabled and not _is_loopback(host):
        sys.exit(
            f"paseo-gateway: PASEO_GATEWAY_AUTH_DISABLED is only allowed on a loopback address, "
            f"not {host}"
        )
    import uvicorn

    # log_config=None: the gateway's own logging set-up (JSON or text) covers uvicorn too.
    if workers > 1:
        # Migrate once here; the workers (which read settings from the environment) skip it.
        if settings.migrate_on_start:
            from app.migrations import upgrade_to_head

            upgrade_to_head(settings.database_url)
            os.environ["PASEO_GATEWAY_MIGRATE_ON_START"] = "false"
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
        )
        return
    from app.main import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_config=None)


def _migrate(url: str) -> str:
    """Apply every migration; say which database (never its password) and what changed."""
    from app.migrations import current_revision, upgrade_to_head

    before = asyncio.run(current_revision(url))
    upgrade_to_head(url)
    after = asyncio.run(current_revision(url))
    where = f"database {_redacted_url(url)} is at revision {after}"
    if before == after:
        return f"{where}, the newest: nothing to do"
    return f"{where} (upgraded from {before or 'an empty database'})"


async def _check(settings: Settings) -> int:
    """What `/readyz` checks, from the command line, with what to do about each failure."""
    from app.db import Database
    from app.main import make_daemons, paseo_binary_needed
    from app.migrations import pending_migrations
    from app.services.health import HealthService

    print(f"ok    config: database {_redacted_url(settings.database_url)}")
    print(f"ok    config: transport {settings.transport}")
    db = Database.from_url(settings.database_url)
    daemons = make_daemons(settings)
    try:
        readiness = await HealthService(db, daemons, paseo_binary_needed(settings)).readiness()
        pending = await pending_migrations(settings.database_url) if await db.ping() else None
    finally:
        await daemons.aclose()
        await db.dispose()
    for name, check in readiness.checks.items():
        print(f"{'ok  ' if check.ok else 'FAIL'}  {name}: {check.detail}")
    if pending:
        print(f"note  migrations: {pending} to apply (`paseo-gateway migrate`, or at start)")
    return 0 if readiness.status == "ready" else 1


def _redacted_url(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)


async def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from app.db import Database
    from app.errors import GatewayError
    from app.migrations import upgrade_to_head_async
    from app.services.auth import AuthService

    # Keys live in the database: one made for another gateway's database is unknown there.
    print(f"database: {_redacted_url(settings.database_url)}", file=sys.stderr)
    if new_file := _missing_sqlite_file(settings.database_url):
        print(
            f"note: {new_file} is a new database that no gateway uses yet; keys live in "
            "the gateway's database: set the gateway's PASEO_GATEWAY_DATABASE_URL",
            file=sys.stderr,
        )
    await upgrade_to_head_async(settings.database_url)
    db = Database.from_url(settings.database_url)
    auth = AuthService(db, stream_token_seconds=settings.stream_token_seconds)
    try:
        if args.keys_command == "create":
            created = await auth.create_key(args.name, args.scope)
            print(f"id:     {created.key.id}\nscopes: {' '.join(created.key.scopes)}")
            print(f"secret: {created.secret}\n(shown once; keep it somewhere safe)")
        elif args.keys_command == "list":
            for key in await auth.list_keys(include_revoked=args.revoked):
                state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                print(f"{key.id}  {key.prefix}…  {','.join(key.scopes):<17} {state:<18} {key.name}")
        else:
            key = await auth.revoke_key(args.key_id)
            print(f"revoked {key.id} ({key.name})")
    except GatewayError as exc:
        print(f"paseo-gateway: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
    return 0


def _missing_sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL that does not exist yet (opening it would create it)."""
    from sqlalchemy import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return None if os.path.exists(parsed.database) else parsed.database


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    main()
