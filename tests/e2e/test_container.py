"""The Dockerfile without Docker (no engine runs here, issue 6): hadolint finds nothing, and
its own commands, read from the file, build the service from the files it copies and run it
the way the image would (its environment, a non-root user, its entry point), with its
HEALTHCHECK passing while the server is up and failing once it is down.

Paths of the image (/opt/calsvc, /etc/calsvc, /var/lib/calsvc) are mapped under a temporary
root; `groupadd`/`useradd` are not run (they would change this machine): the server runs as
the image's numeric uid and gid instead, which needs no entry in /etc/passwd."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import SECRET
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_PATHS = ("/opt/calsvc", "/etc/calsvc", "/var/lib/calsvc")
SYSTEM_PYTHON = "/usr/bin/python3.11"


def instructions() -> list[list[tuple[str, str]]]:
    """The stages of the Dockerfile, each a list of (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        stages[-1].append((word.upper(), rest.strip()))
    return stages


def image_env(args: str) -> dict[str, str]:
    """ENV KEY=VALUE KEY2=VALUE2 ..."""
    return dict(item.split("=", 1) for item in shlex.split(args))


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    run = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_the_image_commands_build_and_run_the_service(server_env):
    build, final = instructions()
    assert build[0][1].startswith("python:3.11-slim") and final[0][1].startswith("python:3.11-slim")
    # a root the image's uid can read (pytest's tmp_path is private to root)
    root = Path(tempfile.mkdtemp(prefix="calsvc-image-"))
    root.chmod(0o755)
    server = None
    try:
        def mapped(text: str) -> str:
            for path in IMAGE_PATHS:
                text = text.replace(path, str(root) + path)
            return text

        # The image runs as a uid of its own: that needs a Python that uid may run (here the
        # interpreter may live under /root). As root, with Debian's 3.11, `python` is that one.
        as_image_user = os.geteuid() == 0 and os.access(SYSTEM_PYTHON, os.X_OK)
        path = os.environ["PATH"]
        if as_image_user:
            (root / "bin").mkdir()
            (root / "bin" / "python").symlink_to(SYSTEM_PYTHON)
            path = f"{root / 'bin'}:{path}"
        # -- the build stage: its COPY lines make the context, its RUN lines install from it
        src = root / "src"
        src.mkdir()
        for word, args in build:
            if word == "COPY":
                *sources, _ = args.split()
                for name in sources:
                    source = ROOT / name
                    (shutil.copytree if source.is_dir() else shutil.copy)(source, src / name)
            elif word == "RUN":
                run = subprocess.run(["bash", "-c", mapped(args)], cwd=src, capture_output=True, text=True,
                                     env=os.environ | {"PATH": path})
                assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        # -- the final stage: files, environment, user, working directory, entry point
        env: dict[str, str] = {"HOME": str(root / "var/lib/calsvc"), "PATH": path}
        user = workdir = None
        for word, args in final:
            if word == "COPY" and not args.startswith("--from"):
                source, target = args.split()
                Path(mapped(target)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, mapped(target))
            elif word == "ENV":
                for key, value in image_env(args).items():
                    env[key] = mapped(value.replace("$PATH", env["PATH"]))
            elif word == "USER":
                user = args
            elif word == "WORKDIR":
                workdir = Path(mapped(args))
        entry = json.loads(dict(final)["ENTRYPOINT"]) + json.loads(dict(final)["CMD"])
        healthcheck = json.loads(dict(final)["HEALTHCHECK"].split(" CMD ", 1)[1])
        assert user is not None and re.fullmatch(r"\d+:\d+", user), "USER must be a numeric uid:gid"
        uid, gid = map(int, user.split(":"))
        assert uid != 0
        workdir.mkdir(parents=True, exist_ok=True)
        if as_image_user:
            os.chown(workdir, uid, gid)
        # configured by environment only, as a deployment would: the database and the secret
        port = free_port()
        env.update(server_env, CALSVC_SERVER_PORT=str(port), CALSVC_SERVER_HOST="127.0.0.1",
                   CALSVC_AUTH_SECRET=SECRET, CALSVC_AUTH_BCRYPT_ROUNDS="4")
        with open(root / "server.log", "wb") as log:  # the child keeps its own descriptor
            server = subprocess.Popen(entry, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      **({"user": uid, "group": gid, "extra_groups": []} if as_image_user else {}))
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (root / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (root / "server.log").read_text()
            time.sleep(0.2)
        check = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=10)
        assert check.returncode == 0, check.stderr
        for page in ("/docs", "/redoc", "/redoc/static/redoc.standalone.js", "/openapi.json", "/metrics"):  # what the package must carry
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=5) as resp:
                assert resp.status == 200, page
        if as_image_user:
            import psutil

            assert psutil.Process(server.pid).uids().effective == uid
        server.terminate()
        assert server.wait(20) == 0, (root / "server.log").read_text()
        check = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=10)
        assert check.returncode != 0  # the check fails when the server is down
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)
