"""Proof that memory_cgroup puts processes under a real kernel memory limit and cleans up after itself.

Skips (with the module's reason) where no memory cgroup can be made; fails instead when CI is set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}_devtools import memory_cgroup
from {{ cookiecutter.package_name }}_devtools.memory_cgroup import (
    CgroupError,
    MemoryCgroup,
    cgroup_unavailable_reason,
    cleanup_stale_groups,
)

PREFIX = "bokeh-memtest-pytest"
MIB = 1 << 20
LIMIT = 128 * MIB

# Allocate and touch N MB (bytes * n is one malloc plus a memset: every page is written).
ALLOCATE = textwrap.dedent(
    """
    import sys, time
    block = b"\\x01" * (int(sys.argv[1]) * 1000 * 1000)
    print("allocated", len(block), flush=True)
    time.sleep(0.2)
    """
)


def _hierarchy_parent() -> Path | None:
    """Where groups are created here, or None when unavailable."""
    try:
        return memory_cgroup._find_hierarchy().parent
    except CgroupError:
        return None


_PARENT = _hierarchy_parent()
_BEFORE = {p.name for p in _PARENT.iterdir()} if _PARENT else set()


@pytest.fixture(scope="module")
def needs_cgroup() -> None:
    """Skip the real-kernel tests with the module's reason (fail in CI, where it must work)."""
    reason = cgroup_unavailable_reason(PREFIX)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"memory cgroup unavailable in CI: {reason}")
    pytest.skip(reason)


def _assert_gone(path: Path) -> None:
    """The group directory no longer exists."""
    assert not path.exists(), f"{path} left behind"


@pytest.mark.usefixtures("needs_cgroup")
def test_oom_kill_over_limit(record_property: pytest.RecordProperty) -> None:
    """(1) A child touching 300 MB inside a 128 MiB group is SIGKILLed by the OOM killer."""
    with MemoryCgroup.create(LIMIT, PREFIX) as group:
        assert group.swap_limited
        start = time.monotonic()
        args = [sys.executable, "-c", ALLOCATE, "300"]
        result = group.run(args, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - start
        kills = group.oom_kills()
        peak = group.peak_bytes()
        path = group.path
        record_property("oom_seconds", round(elapsed, 3))
        print(f"OOM run: rc={result.returncode} kills={kills} peak={peak} in {elapsed:.3f}s")
    assert result.returncode == -signal.SIGKILL, result
    assert "allocated" not in result.stdout
    assert kills >= 1
    assert peak is None or peak <= LIMIT
    _assert_gone(path)


@pytest.mark.usefixtures("needs_cgroup")
def test_control_under_limit() -> None:
    """(2) The same child touching 50 MB survives; no OOM kill; its memory was charged to the group."""
    with MemoryCgroup.create(LIMIT, PREFIX) as group:
        result = group.run([sys.executable, "-c", ALLOCATE, "50"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result
        assert "allocated 50000000" in result.stdout
        assert group.oom_kills() == 0
        peak = group.peak_bytes()
        # Joined before exec: the interpreter and the 50 MB block are both charged here.
        assert peak is not None and 50_000_000 <= peak <= LIMIT
        assert group.pids() == []


@pytest.mark.usefixtures("needs_cgroup")
def test_group_removed_on_exit() -> None:
    """(3) After the with block the directory is gone, and the limit was really set."""
    with MemoryCgroup.create(LIMIT, PREFIX) as group:
        path = group.path
        assert path.is_dir()
        assert group.limit_bytes == LIMIT
        if group.version == "v1" and (path / "memory.memsw.limit_in_bytes").exists():
            assert int((path / "memory.memsw.limit_in_bytes").read_text()) == LIMIT
    _assert_gone(path)
    group.close()  # idempotent


@pytest.mark.usefixtures("needs_cgroup")
def test_leftover_processes_killed_and_group_removed() -> None:
    """Processes still running at exit are SIGKILLed, reaped, and the group removed."""
    with MemoryCgroup.create(LIMIT, PREFIX) as group:
        proc = group.popen(["sleep", "1000"])
        outsider = subprocess.Popen(["sleep", "1000"])
        try:
            group.add(outsider.pid)
            assert sorted(group.pids()) == sorted([proc.pid, outsider.pid])
        except BaseException:
            outsider.kill()
            raise
        path = group.path
    assert proc.returncode == -signal.SIGKILL
    assert outsider.wait(timeout=5) == -signal.SIGKILL
    _assert_gone(path)


@pytest.mark.usefixtures("needs_cgroup")
def test_removed_on_exception_and_keyboard_interrupt() -> None:
    """Exceptions and KeyboardInterrupt inside the block still kill and remove."""
    paths = []
    for exc_type in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(exc_type), MemoryCgroup.create(LIMIT, PREFIX) as group:
            paths.append(group.path)
            proc = group.popen(["sleep", "1000"])
            raise exc_type("boom")
        assert proc.returncode == -signal.SIGKILL
    for path in paths:
        _assert_gone(path)


CRASHING_RUNNER = textwrap.dedent(
    """
    import os, signal, sys
    import importlib
    MemoryCgroup = importlib.import_module(sys.argv[1]).MemoryCgroup
    group = MemoryCgroup.create(64 << 20, sys.argv[2])
    child = group.popen(["sleep", "1000"])
    print(group.path, child.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no with-exit, no atexit: a hard crash
    """
)


@pytest.mark.usefixtures("needs_cgroup")
def test_hard_crash_child_dies_and_stale_group_is_cleaned() -> None:
    """A runner killed by SIGKILL takes its children along (PDEATHSIG); the next run removes the group."""
    here = memory_cgroup.__name__
    out = subprocess.run(
        [sys.executable, "-c", CRASHING_RUNNER, here, PREFIX], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == -signal.SIGKILL, out
    path_text, pid_text = out.stdout.split()
    path = Path(path_text)
    assert path.is_dir()
    deadline = time.monotonic() + 5
    while (path / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (path / "cgroup.procs").read_text().strip() == "", f"sleep {pid_text} outlived its runner"
    assert cleanup_stale_groups(PREFIX) == [path]
    _assert_gone(path)


FORGETFUL_RUNNER = textwrap.dedent(
    """
    import sys
    import importlib
    MemoryCgroup = importlib.import_module(sys.argv[1]).MemoryCgroup
    group = MemoryCgroup.create(64 << 20, sys.argv[2])
    child = group.popen(["sleep", "1000"])
    print(group.path, flush=True)
    sys.exit(3)  # never closes the group: the atexit hook must
    """
)


@pytest.mark.usefixtures("needs_cgroup")
def test_group_never_closed_is_removed_at_interpreter_exit() -> None:
    """A group left open is killed and removed by the module's atexit hook."""
    here = memory_cgroup.__name__
    out = subprocess.run(
        [sys.executable, "-c", FORGETFUL_RUNNER, here, PREFIX], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 3, out
    _assert_gone(Path(out.stdout.strip()))


@pytest.mark.usefixtures("needs_cgroup")
def test_refuses_to_add_the_caller() -> None:
    """Adding ourselves would make the exit kill the test runner."""
    with MemoryCgroup.create(LIMIT, PREFIX) as group, pytest.raises(ValueError):
        group.add(os.getpid())


@pytest.mark.usefixtures("needs_cgroup")
def test_stale_groups_cleaned_only_when_dead_and_empty() -> None:
    """Only empty groups of a dead creator with our prefix are removed by cleanup_stale_groups."""
    assert _PARENT is not None
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = _PARENT / f"{PREFIX}-{dead.pid}-deadbeef"
    mine = _PARENT / f"{PREFIX}-{os.getpid()}-0badcafe"  # creator alive: maybe about to be used
    busy = _PARENT / f"{PREFIX}-{dead.pid}-0000beef"  # creator dead but a live task inside
    other = _PARENT / f"{PREFIX}x-{dead.pid}-deadbeef"  # another prefix
    sleeper = None
    try:
        for path in (stale, mine, busy, other):
            path.mkdir()
        sleeper = subprocess.Popen(["sleep", "1000"])
        (busy / "cgroup.procs").write_text(str(sleeper.pid))
        removed = cleanup_stale_groups(PREFIX)
        assert removed == [stale]
        assert mine.is_dir() and busy.is_dir() and other.is_dir()
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
        for path in (stale, mine, busy, other):
            for _ in range(100):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


@pytest.mark.usefixtures("needs_cgroup")
def test_reason_none_here() -> None:
    """The availability probe agrees with what the tests above just did."""
    assert cgroup_unavailable_reason(PREFIX) is None


@pytest.mark.parametrize(
    ("mountinfo", "expected"),
    [
        ("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", "no memory cgroup controller is mounted"),
        ("35 31 0:32 / {d} ro,relatime - cgroup cgroup ro,memory\n", "mounted read-only"),
        ("41 31 0:38 / {d} rw - cgroup2 cgroup2 rw\n", "cgroup2 mount exists but does not offer"),
    ],
)
def test_reasons_from_fake_mounts(tmp_path: Path, mountinfo: str, expected: str) -> None:
    """Human reasons for hosts without a usable memory controller (fake /proc contents)."""
    (tmp_path / "cgroup.controllers").write_text("cpu io pids\n")
    with pytest.raises(CgroupError, match=expected):
        memory_cgroup._find_hierarchy(mountinfo=mountinfo.format(d=tmp_path), proc_cgroup="0::/\n", euid=0)


def test_v2_parent_walk_for_non_root(tmp_path: Path) -> None:
    """On v2 a non-root user gets the deepest ancestor that has the memory controller delegated."""
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory\n")
    app = tmp_path / "user.slice" / "app.slice"
    scope = app / "term.scope"
    scope.mkdir(parents=True)
    (app / "cgroup.controllers").write_text("memory pids\n")
    (app / "cgroup.subtree_control").write_text("memory pids\n")
    mountinfo = f"41 31 0:38 / {tmp_path} rw - cgroup2 cgroup2 rw\n"
    found = memory_cgroup._find_hierarchy(
        mountinfo=mountinfo, proc_cgroup="0::/user.slice/app.slice/term.scope\n", euid=1000
    )
    assert (found.version, found.parent) == ("v2", app)
    found_root = memory_cgroup._find_hierarchy(mountinfo=mountinfo, proc_cgroup="0::/\n", euid=0)
    assert (found_root.version, found_root.parent) == ("v2", tmp_path)


@pytest.mark.usefixtures("needs_cgroup")
def test_zz_nothing_left_behind() -> None:
    """(4) The parent directory lists exactly what it listed before these tests."""
    assert _PARENT is not None
    after = {p.name for p in _PARENT.iterdir()}
    assert after - _BEFORE == set()
    assert list(memory_cgroup.list_groups(PREFIX)) == []
