"""Command line: `calsvc serve [--host H] [--port P] [--workers N]` and `calsvc migrate`."""
from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import time

from calsvc.config import ConfigError, Settings, ensure_secret, load_settings

log = logging.getLogger("calsvc")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("yoyo").setLevel(logging.WARNING)


def _prepare(settings: Settings) -> tuple[Settings, object | None]:
    """Fill in the secret (development) and the database (embedded when none is configured)."""
    if not settings.production:
        settings = ensure_secret(settings)
    server = None
    if not settings.database.url:
        from calsvc import embedded

        url, server = embedded.start(settings.server.data_dir)
        settings = settings.replace(database={"url": url})
    return settings, server


def _migrate(settings: Settings, always: bool = False) -> None:
    """Apply pending migrations (`always`, or when auto_migrate is on); else refuse to go on."""
    from calsvc.db import migrate

    dsn = str(settings.database.url)
    if always or settings.database.auto_migrate:
        migrate.apply_all(dsn)
        return
    pending = migrate.pending(dsn)
    if pending:
        raise ConfigError(
            f"refusing to start: {len(pending)} pending migration(s) ({', '.join(pending)}) and "
            "database.auto_migrate is false; run `calsvc migrate` first"
        )


def run_worker(settings: Settings, reuse_port: bool) -> None:
    """Serve in this process until SIGINT or SIGTERM."""
    from aiohttp import web

    from calsvc.app import create_app
    from calsvc.web.middlewares import AccessLogger

    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        pass
    app = create_app(settings)
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        reuse_port=reuse_port or None,
        access_log_class=AccessLogger,
        shutdown_timeout=settings.server.shutdown_timeout,
        print=None,
        handle_signals=True,
    )


def _serve_workers(settings: Settings) -> None:
    """N processes, each binding the port with SO_REUSEPORT; restart a worker that dies."""
    ctx = multiprocessing.get_context("fork")
    stopping = False

    def spawn() -> multiprocessing.Process:
        process = ctx.Process(target=run_worker, args=(settings, True), daemon=False)
        process.start()
        return process

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers = [spawn() for _ in range(settings.server.workers)]
    while not stopping:
        time.sleep(0.2)
        for i, process in enumerate(workers):
            if not process.is_alive() and not stopping:
                log.error("worker %s exited with %s; starting another", process.pid, process.exitcode)
                time.sleep(0.5)
                workers[i] = spawn()
    for process in workers:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + settings.server.shutdown_timeout + 5
    for process in workers:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calsvc", description="Collaborative event scheduling service")
    parser.add_argument("--config", help="path of config.toml (default: $CALSVC_CONFIG or ./config.toml)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply pending migrations and serve")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="processes sharing the port (default 1)")
    commands.add_parser("migrate", help="apply pending migrations and exit")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(args.config)
        if args.command == "serve":
            overrides = {k: v for k, v in (("host", args.host), ("port", args.port),
                                           ("workers", args.workers)) if v is not None}
            if overrides:
                settings = settings.replace(server=overrides)
                from calsvc.config import validate

                validate(settings)
        _setup_logging(settings.server.log_level)
        settings, embedded_server = _prepare(settings)
        _migrate(settings, always=args.command == "migrate")
    except ConfigError as exc:
        print(f"calsvc: {exc}", file=sys.stderr)
        return 2

    if args.command == "migrate":
        log.info("migrations are up to date")
        return 0
    where = f"http://{settings.server.host}:{settings.server.port}"
    log.info("calsvc serving on %s with %d worker(s)", where, settings.server.workers)
    try:
        if settings.server.workers == 1:
            run_worker(settings, reuse_port=False)
        else:
            _serve_workers(settings)
    except OSError as exc:
        print(f"calsvc: cannot serve on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    log.info("calsvc stopped")
    del embedded_server  # the embedded PostgreSQL stops at exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
