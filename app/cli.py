"""The `paseo-gateway` command: `serve` (default) and `migrate`."""

from __future__ import annotations

import argparse
import logging

from app.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="paseo-gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the HTTP server (the default)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    args = parser.parse_args(argv)

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "migrate":
        from app.migrations import upgrade_to_head

        upgrade_to_head(settings.database_url)
        return
    import uvicorn

    from app.main import create_app

    uvicorn.run(
        create_app(settings),
        host=getattr(args, "host", "127.0.0.1"),
        port=getattr(args, "port", 8000),
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
