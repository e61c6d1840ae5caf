"""Command line: `calsvc serve [--host H] [--port P] [--workers N]` and `calsvc migrate`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING

from calsvc.config import ConfigError, Settings, ensure_secret, load_settings, validate

if TYPE_CHECKING:
    from calsvc.embedded import EmbeddedPostgres

log = logging.getLogger("calsvc")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("yoyo").setLevel(logging.WARNING)


def check_database(settings: Settings) -> None:
    """A configured database must answer (ConfigError in one line when it does not). Not so
    `listen_url`: its listener keeps retrying, and streams heal meanwhile (docs/api.md)."""
    from calsvc.db import probe

    probe.check_database(settings.database.url, settings.database.connect_timeout)


class Stopped(Exception):
    """SIGTERM or SIGHUP came before the server put its own handlers in place."""


def _stop_while_starting(signum: int, frame: object) -> None:
    raise Stopped(signal.Signals(signum).name)


def _hang_up_as_terminate(signum: int, frame: object) -> None:
    """SIGHUP (the terminal closed) stops the server as SIGTERM does."""
    os.kill(os.getpid(), signal.SIGTERM)


def _stop_embedded(database: EmbeddedPostgres) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # stopping already; a second signal must not cut it short
    database.stop()


def ensure_migrated(settings: Settings, always: bool = False) -> None:
    """Apply pending migrations (`always`, or when auto_migrate is on); else refuse to go on.
    A database that refuses them (a user without the right to create tables) is a ConfigError."""
    import psycopg

    from calsvc.db import migrate, probe

    dsn = str(settings.database.url)
    try:
        if always or settings.database.auto_migrate:
            migrate.apply_all(dsn)
            return
        pending = migrate.pending(dsn)
    except psycopg.Error as exc:
        reason = probe.redact(str(exc), dsn)
        raise ConfigError(f"{probe.SETTING}: the database refused the migrations: {reason}") from None
    if pending:
        raise ConfigError(
            f"refusing to start: {len(pending)} pending migration(s) ({', '.join(pending)}) and "
            "database.auto_migrate is false; run `calsvc migrate` first"
        )


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound once here and shared by every worker (so a port in use
    fails at once, and a second instance can never silently share it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def docs_url(sock: socket.socket) -> str:
    """The URL of /docs on the listening socket (its real port, when port 0 was asked for;
    the loopback address when it listens on every address)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}/docs" if ":" in host else f"http://{host}:{port}/docs"


REQUEST_LINE_LIMIT = 32768  # bytes of a request line or one header line


def run_worker(settings: Settings, sock: socket.socket) -> None:
    """Serve on `sock` in this process until SIGINT or SIGTERM."""
    from calsvc.app import create_app
    from calsvc.web import keys, server
    from calsvc.web.middlewares import AccessLogger

    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        pass
    app = create_app(settings)
    server.run(
        app,
        sock,
        header_timeout=settings.server.header_timeout,
        access_log_class=AccessLogger,
        shutdown_timeout=settings.server.shutdown_timeout,
        drain=app[keys.DRAIN],
        drain_seconds=settings.server.drain_seconds,
        # aiohttp answers a request line or header over these itself, in plain text, before the
        # app sees it: room enough for every query within its documented bounds (a 512-character
        # cursor and a 254-character q, percent-encoded), which the app checks with a 422
        max_line_size=REQUEST_LINE_LIMIT,
        max_field_size=REQUEST_LINE_LIMIT,
    )


def _forked_worker(settings: Settings, sock: socket.socket) -> None:
    """A worker process: it inherited its parent's signal handlers, which are not its own."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # until server.run installs its own
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the parent hears it too, and stops the workers
    run_worker(settings, sock)


FAST_EXIT = 5.0  # a worker that dies sooner than this after its start "failed to start"
MAX_FAST_EXITS = 3  # in a row: then the whole service stops


def _serve_workers(settings: Settings, sock: socket.socket) -> int:
    """N forked processes accepting on one socket; a worker that dies is replaced, unless
    workers keep dying right after starting (then everything stops, exit status 1)."""
    ctx = multiprocessing.get_context("fork")
    stopping = False
    fast_exits = 0

    def spawn() -> tuple[multiprocessing.process.BaseProcess, float]:
        process = ctx.Process(target=_forked_worker, args=(settings, sock), daemon=False)
        process.start()
        return process, time.monotonic()

    workers: list[tuple[multiprocessing.process.BaseProcess, float]] = []
    signalled: set[int] = set()

    def forward(signum: int) -> None:
        """Each worker gets one signal (a second would end its drain at once)."""
        for process, _ in workers:
            if process.is_alive() and process.pid is not None and process.pid not in signalled:
                signalled.add(process.pid)
                os.kill(process.pid, signum)

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        forward(signum)  # at once, not at the next poll: the drain starts now (SIGINT: no drain)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, stop)
    workers.extend(spawn() for _ in range(settings.server.workers))
    status = 0
    while not stopping:
        time.sleep(0.2)
        for i, (process, started) in enumerate(workers):
            if process.is_alive() or stopping:
                continue
            fast_exits = fast_exits + 1 if time.monotonic() - started < FAST_EXIT else 0
            log.error("worker %s exited with %s", process.pid, process.exitcode)
            if fast_exits >= MAX_FAST_EXITS:
                log.error("workers keep failing right after they start; stopping")
                stopping, status = True, 1
                break
            time.sleep(0.5 * 2**fast_exits)
            workers[i] = spawn()
    forward(signal.SIGTERM)  # when the workers failed, and any started after the signal
    deadline = time.monotonic() + settings.server.drain_seconds + settings.server.shutdown_timeout + 5
    for process, _ in workers:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    return status


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

    # Until the server's own handlers: a stop unwinds, so the embedded PostgreSQL stops too.
    signal.signal(signal.SIGTERM, _stop_while_starting)
    signal.signal(signal.SIGHUP, _stop_while_starting)
    with contextlib.ExitStack() as cleanup:
        try:
            return _run(args, cleanup)
        except ConfigError as exc:
            cleanup.close()  # the embedded PostgreSQL's last lines first: the error ends the output
            print(f"calsvc: {exc}", file=sys.stderr)
            return 2
        except (Stopped, KeyboardInterrupt):
            return 0


def _run(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> int:
    settings = load_settings(args.config)
    if args.command == "serve":
        given = (("host", args.host), ("port", args.port), ("workers", args.workers))
        overrides = {k: v for k, v in given if v is not None}
        if overrides:
            settings = settings.replace(server=overrides)
            validate(settings)
    _setup_logging(settings.server.log_level)
    if not settings.production:
        settings = ensure_secret(settings)
    if settings.database.url:
        check_database(settings)
    else:
        from calsvc.embedded import EmbeddedPostgres

        database = EmbeddedPostgres(settings.server.data_dir)
        cleanup.callback(_stop_embedded, database)
        settings = settings.replace(database={"url": database.start()})
    ensure_migrated(settings, always=args.command == "migrate")
    if args.command == "migrate":
        log.info("migrations are up to date")
        return 0
    return _serve(settings)


def _serve(settings: Settings) -> int:
    where = f"http://{settings.server.host}:{settings.server.port}"
    try:
        sock = bind(settings.server.host, settings.server.port)
    except OSError as exc:
        print(f"calsvc: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    log.info("calsvc serving on %s with %d worker(s); API docs: %s", where, settings.server.workers, docs_url(sock))
    status = 0
    if settings.server.workers == 1:
        signal.signal(signal.SIGHUP, _hang_up_as_terminate)
        run_worker(settings, sock)
    else:
        status = _serve_workers(settings, sock)
    sock.close()
    log.info("calsvc stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
