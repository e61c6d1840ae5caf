"""Real server processes: `python -m calsvc serve` started as a subprocess."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import SECRET


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, cwd: Path, env: dict[str, str], args: list[str], port: int | None = None) -> None:
        self.port = port or free_port()  # a port of its own, or one given (a restart on the same address)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"server-{self.port}.log"
        self._log = open(self.log_path, "ab")  # a restart on the same port adds to it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "calsvc", "serve", "--port", str(self.port), *args],
            cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"server ignored SIGTERM:\n{self.log()}") from None
        self._log.close()
        return self.process.returncode

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALSVC_")}
    # no drain at shutdown (no balancer here; tests/e2e/test_drain.py sets the default back)
    env.update(CALSVC_AUTH_BCRYPT_ROUNDS="4", CALSVC_RATE_LIMIT_AUTH_PER_MINUTE="0", CALSVC_SERVER_DRAIN_SECONDS="0",
               CALSVC_RATE_LIMIT_USER_PER_MINUTE="0", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env.update(extra)
    return env


@pytest.fixture
def start_server(tmp_path):
    servers: list[Server] = []

    def start(*args: str, cwd: Path | None = None, port: int | None = None, **env: str) -> Server:
        server = Server(cwd or tmp_path, base_env(**env), list(args), port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server_env(database_url) -> dict[str, str]:
    """Environment of a server using the test's cloned database."""
    return {"CALSVC_DATABASE_URL": database_url, "CALSVC_AUTH_SECRET": SECRET}
