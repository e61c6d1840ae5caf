"""Starting `calsvc` as a newcomer does: what a mistake in the configuration answers (one line
on stderr naming the setting, exit status 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

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
