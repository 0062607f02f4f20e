"""The built container image, run as the CI runs it: ``/healthz`` answers, non-root, SIGTERM stops it.

Build the image first (README "CI"), then ``pytest -m image``; ``IMAGE`` names another tag than
``<project name>:<version>`` from pyproject.toml. Without a docker daemon or the image the test
skips, saying which; with ``CI`` set it fails instead. It can fail: an image running as root, one
whose server does not answer, or one that ignores SIGTERM (docker then kills it after the grace:
exit code 137, not 0) breaks an assertion.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error

import pytest

from {{ cookiecutter.package_name }}.server.settings import Settings
from {{ cookiecutter.package_name }}_devtools.polling import wait_until
from {{ cookiecutter.package_name }}_devtools.serving import free_port, project_root
from {{ cookiecutter.package_name }}_devtools.testing import http_get

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.image
#: ``docker stop --time``: SIGKILL after this; the image drains for 5 s (DRAIN_SECONDS) before it exits.
STOP_GRACE_S = 20


def image_name() -> str:
    if os.environ.get("IMAGE"):
        return os.environ["IMAGE"]
    project = tomllib.loads((project_root() / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return f"{project['name']}:{project['version']}"


@pytest.fixture(scope="module")
def docker() -> str:
    """The docker command, once its daemon answers and the image exists."""
    command = shutil.which("docker")
    problem = None if command else "no docker command"
    if command and subprocess.run([command, "info"], capture_output=True, timeout=60).returncode:
        problem = "the docker daemon does not answer"
    inspected = (
        subprocess.run([command, "image", "inspect", image_name()], capture_output=True, timeout=60)
        if command and not problem
        else None
    )
    if inspected is not None and inspected.returncode:
        problem = f"no image {image_name()}: build it first (docker build -t {image_name()} .)"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    assert command is not None
    return command


def answers(url: str) -> bool:
    try:
        return http_get(url, timeout=2)[0] == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def test_the_image_answers_runs_as_non_root_and_stops_on_sigterm(docker: str) -> None:
    port = free_port()
    started = subprocess.run(
        [docker, "run", "--detach", "--publish", f"127.0.0.1:{port}:{Settings.port}", image_name()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    container = started.stdout.strip()
    try:
        assert wait_until(lambda: answers(f"http://127.0.0.1:{port}/healthz"), timeout=60, interval=0.5), (
            subprocess.run([docker, "logs", container], capture_output=True, text=True).stderr[-3000:]
        )
        health = json.loads(http_get(f"http://127.0.0.1:{port}/healthz")[1])
        assert health["status"] == "ok" and all(p["active"] for p in health["patches"].values()), health
        assert http_get(f"http://127.0.0.1:{port}/app")[0] == 200  # the app itself is served
        uid = subprocess.run(
            [docker, "exec", container, "id", "-u"], capture_output=True, text=True, timeout=60
        )
        assert uid.stdout.strip() not in ("", "0"), uid
        before = time.monotonic()
        subprocess.run([docker, "stop", "--time", str(STOP_GRACE_S), container], check=True, timeout=120)
        stopped_after = time.monotonic() - before
        inspected = subprocess.run(
            [docker, "inspect", container], capture_output=True, text=True, timeout=60, check=True
        )
        exit_code = json.loads(inspected.stdout)[0]["State"]["ExitCode"]
        assert exit_code == 0, f"exit code {exit_code} (137: killed after the grace, SIGTERM ignored)"
        assert stopped_after < STOP_GRACE_S, stopped_after
    finally:
        subprocess.run([docker, "rm", "--force", container], capture_output=True, timeout=120)
