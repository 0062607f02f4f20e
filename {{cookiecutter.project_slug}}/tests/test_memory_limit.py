"""Under a real kernel memory limit, a crowd several times what the limit holds kills nothing.

Each test starts the server inside a memory cgroup of 512 MiB (the kernel's own OOM killer, as in
a container), every session of the demo app holding 20 MB, and sends 80 new sessions: four times
what fits. First bare ``bokeh serve`` of the same app gets the same crowd: it **must** be
OOM-killed (the group's ``oom_kill`` counter), or the test proves nothing. Then this project's
server: the kernel kills nothing, every new session beyond what fits is refused (a page with 503
and ``Retry-After``, a websocket closed), none fails, and every admitted websocket client still
gets its slider callback answered afterwards.

Needs root and a memory cgroup (v1 or v2). Where none can be made the tests skip with the reason;
with ``CI`` set that is a failure. Marked ``memory_limit`` (deselected by default; about 1 min):
``pytest -m memory_limit``.
"""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}_devtools.crowd import CrowdResult, run_crowd

pytestmark = [
    pytest.mark.memory_limit,
    pytest.mark.timeout(600),
    pytest.mark.usefixtures("real_memory_limit"),
]

LIMIT_BYTES = 512 * 2**20
PAYLOAD_MB = 20
CROWD = 80  # the limit holds about 20 such sessions


def crowd(server: str, kind: str) -> CrowdResult:
    result = run_crowd(server, kind, CROWD, limit_bytes=LIMIT_BYTES, payload_mb=PAYLOAD_MB)
    print(f"\n{server} {kind}: {result.row()}")
    return result


@pytest.mark.parametrize("kind", ["pages", "websockets"])
def test_a_crowd_beyond_the_limit_kills_bare_bokeh_but_not_this_server(kind: str) -> None:
    bare = crowd("bare", kind)
    assert bare.killed and bare.oom_kills >= 1, f"the control must be OOM-killed: {bare.row()}"

    project = crowd("project", kind)
    assert project.oom_kills == 0 and not project.killed, f"{project.row()}\n{project.log_tail}"
    assert project.failed == 0, project.row()
    assert project.admitted + project.refused == CROWD, project.row()
    assert project.admitted >= 5, f"admission refused nearly everything: {project.row()}"
    assert project.refused >= CROWD // 2, project.row()
    assert project.refused_without_retry_after == 0, project.row()
    assert project.peak_bytes is not None and project.peak_bytes < LIMIT_BYTES
    if kind == "websockets":
        assert (project.answered, project.unanswered) == (project.admitted, 0), project.row()
