"""Run processes under a real kernel memory limit (a cgroup v1 or v2 memory group).

Why this exists: a Bokeh server that holds per-session state dies by the kernel's OOM killer long
before any Python-level check notices, and ``resource.setrlimit(RLIMIT_AS)`` is not the same thing
(it limits address space, not resident memory, and fails allocations with ``MemoryError`` instead
of killing). Tests and benchmarks that claim "the server survives N sessions in 512 MiB" need the
same mechanism production uses (a container's memory cgroup), so this module makes a throw-away
memory cgroup, puts processes in it, reports OOM kills and peak usage, and always removes the group
again.

Typical use::

    reason = cgroup_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with MemoryCgroup.create(128 * 2**20) as group:
        proc = group.popen([sys.executable, "-c", "..."])  # joins the group before exec
        proc.wait()
        assert group.oom_kills() >= 1

Only the standard library is used. cgroup v1 (``/sys/fs/cgroup/memory``) and v2 (unified hierarchy
with the ``memory`` controller) are both supported; on v2 the group is created as a leaf under a
parent that has ``+memory`` in ``cgroup.subtree_control`` (enabled on demand if allowed).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DEFAULT_PREFIX",
    "CgroupError",
    "MemoryCgroup",
    "cgroup_unavailable_reason",
    "cleanup_stale_groups",
    "list_groups",
]

DEFAULT_PREFIX = "bokeh-memtest"
_PR_SET_PDEATHSIG = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*$")
_UNLIMITED = 2**62  # anything above this (v1 prints 9223372036854771712) means "no limit"

Version = Literal["v1", "v2"]


class CgroupError(RuntimeError):
    """A memory cgroup could not be created, configured, joined, read or removed."""


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class _Mount:
    """One cgroup mount from /proc/self/mountinfo."""

    mount_point: Path
    root: str  # the cgroup path that is visible at mount_point ("/" unless a subtree is bind-mounted)
    version: Version
    read_only: bool
    super_options: frozenset[str]


@dataclass(frozen=True)
class _Hierarchy:
    """The memory hierarchy to use and the parent directory new groups go into."""

    version: Version
    mount: _Mount
    parent: Path


def _parse_mountinfo(text: str) -> list[_Mount]:
    """Return the cgroup (v1) and cgroup2 mounts listed in a mountinfo text."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mount_opts = set(fields[5].split(","))
        super_opts = frozenset(tail[2].split(","))
        mounts.append(
            _Mount(
                mount_point=Path(fields[4].replace("\\040", " ")),
                root=fields[3],
                version="v2" if tail[0] == "cgroup2" else "v1",
                read_only="ro" in mount_opts or "ro" in super_opts,
                super_options=super_opts,
            )
        )
    return mounts


def _own_cgroup_path(text: str, version: Version) -> str | None:
    """The calling process's cgroup path in the memory hierarchy, from a /proc/self/cgroup text."""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if version == "v1" and "memory" in controllers.split(","):
            return path
        if version == "v2" and parts[0] == "0" and controllers == "":
            return path
    return None


def _read(path: Path) -> str:
    """Read a small cgroup file, mapping OS errors to CgroupError."""
    try:
        return path.read_text()
    except OSError as exc:
        raise CgroupError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _write(path: Path, value: str) -> None:
    """Write one value to a cgroup control file (a single write(2), as the kernel expects)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as exc:
        raise CgroupError(f"cannot open {path} for writing: {exc.strerror or exc}") from exc
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _keyed_ints(text: str) -> dict[str, int]:
    """Parse ``key value`` lines (memory.stat, memory.events, memory.oom_control) into a dict."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _swap_enabled() -> bool:
    """True when /proc/swaps lists at least one active swap area."""
    try:
        return len(Path("/proc/swaps").read_text().strip().splitlines()) > 1
    except OSError:
        return True  # unknown: assume the worst


def _ensure_v2_parent(parent: Path) -> str | None:
    """Make ``parent`` able to hold a v2 memory group; return why it cannot, or None."""
    controllers = parent / "cgroup.controllers"
    if not controllers.exists():
        return f"{parent} is not a cgroup v2 directory"
    try:
        if "memory" not in controllers.read_text().split():
            return f"cgroup v2: the memory controller is not available in {parent} (cgroup.controllers)"
        subtree = parent / "cgroup.subtree_control"
        if "memory" in subtree.read_text().split():
            return None
    except OSError as exc:
        return f"cgroup v2: cannot read {parent}: {exc.strerror}"
    if not os.access(subtree, os.W_OK):
        return f"cgroup v2: {subtree} is not writable (no delegation; try systemd-run --user -p Delegate=yes)"
    try:
        _write(subtree, "+memory")
    except CgroupError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EBUSY:
            return (
                f"cgroup v2: cannot enable +memory in {subtree}: processes live in {parent} "
                "('no internal processes' rule; in a container use a delegated sub-cgroup)"
            )
        return f"cgroup v2: {exc}"
    return None


def _find_hierarchy(
    parent: str | os.PathLike[str] | None = None,
    *,
    mountinfo: str | None = None,
    proc_cgroup: str | None = None,
    euid: int | None = None,
) -> _Hierarchy:
    """Pick the memory hierarchy and the parent directory for new groups, or raise CgroupError.

    With ``parent`` given, that directory is used (its hierarchy is found from the mounts). Otherwise
    v2 is preferred when a cgroup2 mount offers the memory controller, else the v1 memory mount. The
    keyword arguments exist for unit tests (fake /proc contents).
    """
    if mountinfo is None:
        mountinfo = _read(Path("/proc/self/mountinfo"))
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    euid = os.geteuid() if euid is None else euid
    mounts = _parse_mountinfo(mountinfo)
    v1 = [m for m in mounts if m.version == "v1" and "memory" in m.super_options]
    v2 = []
    for mount in (m for m in mounts if m.version == "v2"):
        try:
            if "memory" in (mount.mount_point / "cgroup.controllers").read_text().split():
                v2.append(mount)
        except OSError:
            continue

    if parent is not None:
        wanted = Path(parent).resolve()
        for mount in v2 + v1:
            if wanted == mount.mount_point or mount.mount_point in wanted.parents:
                problem = _usable_parent(mount, wanted, euid)
                if problem:
                    raise CgroupError(problem)
                return _Hierarchy(mount.version, mount, wanted)
        raise CgroupError(f"{wanted} is not inside a mounted memory cgroup hierarchy")

    if not v1 and not v2:
        has_v2 = any(m.version == "v2" for m in mounts)
        return_reason = "no memory cgroup controller is mounted"
        if has_v2:
            return_reason += " (a cgroup2 mount exists but does not offer the memory controller)"
        raise CgroupError(return_reason)

    problems = []
    for mount in v2:
        candidates = [mount.mount_point] if euid == 0 else []
        own = _own_cgroup_path(proc_cgroup, "v2")
        if own is not None and (own + "/").startswith(mount.root.rstrip("/") + "/"):
            rel = own[len(mount.root.rstrip("/")) :].strip("/")
            here = mount.mount_point / rel if rel else mount.mount_point
            # Deepest ancestor first: that is where non-root users usually have delegation.
            candidates += [here, *here.parents]
        inside = [c for c in candidates if c == mount.mount_point or mount.mount_point in c.parents]
        for candidate in dict.fromkeys(inside):
            problem = _usable_parent(mount, candidate, euid)
            if problem is None:
                return _Hierarchy("v2", mount, candidate)
            problems.append(problem)
    for mount in v1:
        problem = _usable_parent(mount, mount.mount_point, euid)
        if problem is None:
            return _Hierarchy("v1", mount, mount.mount_point)
        problems.append(problem)
    raise CgroupError("; ".join(dict.fromkeys(problems)))


def _usable_parent(mount: _Mount, parent: Path, euid: int) -> str | None:
    """Why new memory groups cannot be made in ``parent`` (None when they can)."""
    who = "root" if euid == 0 else f"not root (euid {euid})"
    if mount.read_only:
        return f"cgroup {mount.version} memory hierarchy at {mount.mount_point} is mounted read-only"
    if not parent.is_dir():
        return f"{parent} does not exist"
    if not os.access(parent, os.W_OK):
        return f"{who} and {parent} is not writable"
    if mount.version == "v2":
        return _ensure_v2_parent(parent)
    return None


# --------------------------------------------------------------------------- the group


def _pid_alive(pid: int) -> bool:
    """True when a process with this pid exists in our pid namespace."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_prefix(prefix: str) -> None:
    """Reject prefixes that could escape the parent directory or confuse stale-group matching."""
    if not _NAME_RE.match(prefix) or len(prefix) > 100:
        raise ValueError(f"name_prefix must be letters, digits, '_', '.' and single '-': {prefix!r}")


def _group_procs(path: Path) -> list[int]:
    """The pids in a group's cgroup.procs (empty when the group is gone)."""
    try:
        text = (path / "cgroup.procs").read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CgroupError(f"cannot read {path / 'cgroup.procs'}: {exc.strerror}") from exc
    return [int(line) for line in text.split()]


def cleanup_stale_groups(
    name_prefix: str = DEFAULT_PREFIX, *, parent: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Remove groups left by crashed earlier runs; return the removed paths.

    Only directories named ``<name_prefix>-<creator pid>-<8 hex>`` are considered, and only those
    with no live task whose creator pid is no longer running (so a concurrent run's fresh, still
    empty group is never taken from under it). Groups with live tasks are left alone.
    """
    _check_prefix(name_prefix)
    try:
        hierarchy = _find_hierarchy(parent)
    except CgroupError:
        return []
    pattern = re.compile("^" + re.escape(name_prefix) + r"-(\d+)-[0-9a-f]{8}$")
    removed = []
    for entry in sorted(hierarchy.parent.iterdir()):
        match = pattern.match(entry.name)
        if not match or not entry.is_dir() or _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(CgroupError, OSError):
            if not _group_procs(entry):
                entry.rmdir()
                removed.append(entry)
    return removed


_OPEN_GROUPS: set[MemoryCgroup] = set()
_OPEN_LOCK = threading.Lock()


@atexit.register
def _close_open_groups() -> None:
    """At interpreter exit, kill and remove every group this process still has open."""
    with _OPEN_LOCK:
        groups = list(_OPEN_GROUPS)
    for group in groups:
        with contextlib.suppress(Exception):
            group.close()


def _libc_prctl() -> Callable[..., int] | None:
    """libc's prctl(2), loaded before fork so the child does not have to (None if unavailable)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


class MemoryCgroup:
    """A throw-away memory cgroup with a hard limit and no swap; a context manager.

    Make one with :meth:`create`. Inside ``with``, start processes in it with :meth:`popen` /
    :meth:`run` (they join before ``exec``, so every page they touch is charged) or move running
    ones with :meth:`add`. On exit every process left in the group is SIGKILLed and the group
    directory is removed, also on exceptions and KeyboardInterrupt (and at interpreter exit for
    groups never closed). Reading methods work until then.
    """

    def __init__(self, path: Path, version: Version, limit_bytes: int, swap_limited: bool) -> None:
        """Wrap an existing, configured group directory (use :meth:`create` instead)."""
        self.path = path
        self.version: Version = version
        self.limit_bytes = limit_bytes
        self.swap_limited = swap_limited
        self._children: list[subprocess.Popen[Any]] = []
        self._closed = False

    def __repr__(self) -> str:
        """Path, version and limit, for test output."""
        return f"MemoryCgroup({str(self.path)!r}, {self.version}, limit={self.limit_bytes})"

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(
        cls,
        limit_bytes: int,
        name_prefix: str = DEFAULT_PREFIX,
        *,
        parent: str | os.PathLike[str] | None = None,
        cleanup_stale: bool = True,
    ) -> MemoryCgroup:
        """Create a uniquely named group limited to ``limit_bytes`` of RAM and no swap.

        The name is ``<name_prefix>-<our pid>-<8 random hex>`` under ``parent`` (default: the v2
        hierarchy when it offers memory, else the root of the v1 memory mount). Stale groups with
        the same prefix are removed first unless ``cleanup_stale`` is false. Swap is limited with
        ``memory.memsw.limit_in_bytes`` (v1) / ``memory.swap.max = 0`` (v2); when the kernel has no
        such file, :attr:`swap_limited` is True only if no swap is active.
        """
        if limit_bytes < 1 << 20:
            raise ValueError(f"limit_bytes must be at least 1 MiB, got {limit_bytes}")
        _check_prefix(name_prefix)
        hierarchy = _find_hierarchy(parent)
        if cleanup_stale:
            cleanup_stale_groups(name_prefix, parent=hierarchy.parent)
        path = hierarchy.parent / f"{name_prefix}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except OSError as exc:
            raise CgroupError(f"cannot create {path}: {exc.strerror}") from exc
        try:
            if hierarchy.version == "v1":
                _write(path / "memory.limit_in_bytes", str(limit_bytes))
                memsw = path / "memory.memsw.limit_in_bytes"
                swap_limited = not _swap_enabled()
                if memsw.exists():
                    _write(memsw, str(limit_bytes))
                    swap_limited = True
                elif not swap_limited:
                    _write(path / "memory.swappiness", "0")
                actual = int(_read(path / "memory.limit_in_bytes"))
            else:
                _write(path / "memory.max", str(limit_bytes))
                swap_max = path / "memory.swap.max"
                swap_limited = not _swap_enabled()
                if swap_max.exists():
                    _write(swap_max, "0")
                    swap_limited = True
                actual = int(_read(path / "memory.max"))
            group = cls(path, hierarchy.version, actual, swap_limited)
        except BaseException:
            with contextlib.suppress(OSError):
                path.rmdir()
            raise
        with _OPEN_LOCK:
            _OPEN_GROUPS.add(group)
        return group

    # ------------------------------------------------------------------ membership

    def add(self, pid: int) -> None:
        """Move a running process (all its threads) into the group.

        Memory it already uses stays charged where it was; only new pages count here. Prefer
        :meth:`popen`, which joins before ``exec``. The calling process itself is refused, because
        leaving the ``with`` block kills everything in the group.
        """
        if pid in (0, os.getpid()):
            raise ValueError("refusing to move the calling process into the group (exit would kill it)")
        self._check_open()
        _write(self.path / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        """The pids (thread-group leaders) now in the group."""
        return _group_procs(self.path)

    def preexec_join(self) -> Callable[[], None]:
        """A ``preexec_fn`` that moves the forked child into the group before it execs.

        It writes ``0`` ("the writing process") to cgroup.procs with raw os calls only. If the
        write fails, ``subprocess`` raises in the parent and nothing runs outside the group.
        """
        procs = os.fspath(self.path / "cgroup.procs")

        def join() -> None:
            """Runs in the child between fork and exec."""
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

        return join

    def popen(
        self, args: Sequence[str | os.PathLike[str]] | str, *, kill_with_parent: bool = True, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start ``subprocess.Popen(args, **kwargs)`` with the child inside the group from the start.

        With ``kill_with_parent`` (default) the child gets ``PR_SET_PDEATHSIG = SIGKILL``, so it
        does not outlive a test runner that is killed hard. Caveat: Linux sends that signal when
        the *thread* that forked the child exits, so start long-lived children from a thread that
        outlives them (normally the main thread), or pass ``kill_with_parent=False``. A caller's
        own ``preexec_fn`` runs after the join.
        """
        self._check_open()
        join = self.preexec_join()
        user_preexec = kwargs.pop("preexec_fn", None)
        prctl = _libc_prctl() if kill_with_parent else None
        if kill_with_parent and prctl is None:
            raise CgroupError("kill_with_parent needs prctl(2) from libc, which could not be loaded")

        def preexec() -> None:
            """Join the group, arm the parent-death signal, then run the caller's preexec_fn."""
            join()
            if prctl is not None:
                prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if user_preexec is not None:
                user_preexec()

        proc: subprocess.Popen[Any] = subprocess.Popen(args, preexec_fn=preexec, **kwargs)
        self._children.append(proc)
        return proc

    def run(
        self, args: Sequence[str | os.PathLike[str]] | str, *, timeout: float | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Like ``subprocess.run`` (no ``check``), with the child inside the group; kills it on timeout."""
        if kwargs.pop("capture_output", False):
            kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
        with self.popen(args, **kwargs) as proc:
            try:
                out, err = proc.communicate(timeout=timeout)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    # ------------------------------------------------------------------ readings

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this group.

        v1: ``oom_kill`` in memory.oom_control (kernel 4.13+); v2: ``oom_kill`` in memory.events.
        Raises CgroupError when the kernel does not report it, rather than pretending zero.
        """
        name = "memory.oom_control" if self.version == "v1" else "memory.events"
        values = _keyed_ints(_read(self.path / name))
        if "oom_kill" not in values:
            raise CgroupError(f"this kernel reports no oom_kill counter in {self.path / name}")
        return values["oom_kill"]

    def peak_bytes(self) -> int | None:
        """Highest charge seen (RSS plus page cache and kernel memory charged to the group).

        v1: memory.max_usage_in_bytes; v2: memory.peak (kernel 5.19+), None when absent.
        """
        if self.version == "v1":
            return int(_read(self.path / "memory.max_usage_in_bytes"))
        peak = self.path / "memory.peak"
        return int(_read(peak)) if peak.exists() else None

    def usage_bytes(self) -> int:
        """Current charge (memory.usage_in_bytes on v1, memory.current on v2), page cache included."""
        name = "memory.usage_in_bytes" if self.version == "v1" else "memory.current"
        return int(_read(self.path / name))

    def limit_hits(self) -> int:
        """How often usage hit the limit (v1 memory.failcnt, v2 ``max`` in memory.events).

        Not a reliable OOM signal: on the v1 kernel this was written on (6.18), memory.failcnt stayed
        0 even after an OOM kill. Use :meth:`oom_kills`.
        """
        if self.version == "v1":
            return int(_read(self.path / "memory.failcnt"))
        return _keyed_ints(_read(self.path / "memory.events")).get("max", 0)

    def stat(self) -> dict[str, int]:
        """memory.stat as a dict (e.g. v1 ``rss``/``cache``, v2 ``anon``/``file``)."""
        return _keyed_ints(_read(self.path / "memory.stat"))

    # ------------------------------------------------------------------ teardown

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the group until it is empty (re-reading to catch forks)."""
        kill_file = self.path / "cgroup.kill"
        if self.version == "v2" and kill_file.exists():
            with contextlib.suppress(CgroupError):
                _write(kill_file, "1")
        deadline = time.monotonic() + timeout
        while True:
            pids = [pid for pid in _group_procs(self.path) if pid != os.getpid()]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {pids} still in {self.path} after {timeout} s of SIGKILL")
            time.sleep(0.01)

    def close(self, timeout: float = 5.0) -> None:
        """Kill what is left in the group, reap children we started, and remove the group.

        Idempotent. A KeyboardInterrupt arriving meanwhile is held until the group is gone, then
        re-raised. Raises CgroupError if the directory still cannot be removed after ``timeout``.
        """
        if self._closed:
            return
        interrupted: KeyboardInterrupt | None = None
        while True:
            try:
                self._teardown(timeout)
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        self._closed = True
        with _OPEN_LOCK:
            _OPEN_GROUPS.discard(self)
        if interrupted is not None:
            raise interrupted

    def _teardown(self, timeout: float) -> None:
        """One attempt at close(): kill, reap, rmdir with retries while tasks drain."""
        deadline = time.monotonic() + timeout
        self.kill_all(timeout)
        for proc in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove {self.path}: {exc.strerror}") from exc
            self.kill_all(max(0.1, deadline - time.monotonic()))
            time.sleep(0.02)

    def _check_open(self) -> None:
        """Raise if the group was already closed."""
        if self._closed:
            raise CgroupError(f"{self.path} is closed")

    def __enter__(self) -> MemoryCgroup:
        """Return the group itself."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Kill and remove the group, whatever ended the ``with`` block."""
        self.close()


def cgroup_unavailable_reason(
    name_prefix: str = DEFAULT_PREFIX, *, parent: str | os.PathLike[str] | None = None
) -> str | None:
    """None when a memory cgroup can be made and joined here, else a human-readable reason.

    It really tries: creates a 64 MiB group, starts ``true`` inside it, reads the OOM counter and
    removes the group again. On v2 that may enable ``+memory`` in the parent's subtree_control.
    """
    try:
        _check_prefix(name_prefix)
        with MemoryCgroup.create(64 << 20, name_prefix, parent=parent) as group:
            result = group.run(["true"], kill_with_parent=False, timeout=30)
            if result.returncode != 0:
                return f"a process started inside {group.path} failed (exit {result.returncode})"
            group.oom_kills()
            if not group.swap_limited:
                return f"swap is on and {group.path} cannot limit it (no memsw / swap.max file)"
    except (CgroupError, OSError, subprocess.SubprocessError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


def list_groups(
    name_prefix: str = DEFAULT_PREFIX, *, parent: str | os.PathLike[str] | None = None
) -> Iterator[Path]:
    """Existing groups whose name starts with ``<name_prefix>-`` (for tests and diagnostics)."""
    try:
        where = _find_hierarchy(parent).parent
    except CgroupError:
        return
    yield from (p for p in sorted(where.iterdir()) if p.is_dir() and p.name.startswith(name_prefix + "-"))
