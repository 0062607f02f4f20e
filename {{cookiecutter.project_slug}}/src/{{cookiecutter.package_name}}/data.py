"""The demo's data: one read-only dataset shared by the process, and per-session working copies.

The shared dataset is generated deterministically (seeded), loaded once per process in
``on_server_loaded`` and dropped in ``on_server_unloaded``; its arrays are read-only so no session
can change what the others see. Each session derives its own working copy (sized by the
``session_payload_mb`` setting) and keeps it in ``session_context.locals``. The benchmarks scale the
dataset with the environment variable ``<PACKAGE>_DATASET_POINTS`` (``DATASET_POINTS_ENV``) to make
per-process and per-session copies visible in RSS; unset, it has ``SHARED_POINTS`` points.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from .settings import env_var

SHARED_POINTS = 100_000
DATASET_POINTS_ENV = env_var("dataset_points")
PLOT_POINTS = 2_000
_SEED = 20_26


@dataclass(frozen=True)
class Dataset:
    """A read-only time series: ``x`` in days, ``y`` a random walk with a seasonal term."""

    x: np.ndarray
    y: np.ndarray

    @property
    def points(self) -> int:
        return int(self.x.size)

    @property
    def nbytes(self) -> int:
        return int(self.x.nbytes + self.y.nbytes)


def generate_dataset(points: int = SHARED_POINTS) -> Dataset:
    """Build the dataset from a fixed seed: the same numbers on every machine and run."""
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    rng = np.random.default_rng(_SEED)
    x = np.linspace(0.0, 365.0, points)
    y = np.cumsum(rng.normal(0.0, 1.0, points)) + 10.0 * np.sin(2 * np.pi * x / 30.0)
    x.flags.writeable = False
    y.flags.writeable = False
    return Dataset(x=x, y=y)


def configured_points() -> int:
    """The dataset size: ``DATASET_POINTS_ENV`` when set (benchmarks), else ``SHARED_POINTS``."""
    raw = os.environ.get(DATASET_POINTS_ENV, "").strip()
    if not raw:
        return SHARED_POINTS
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{DATASET_POINTS_ENV}={raw!r} is not an integer") from None


_shared: Dataset | None = None
_shared_lock = threading.Lock()


def load_shared_dataset(points: int | None = None) -> Dataset:
    """Load the process-wide dataset once (idempotent, thread-safe); ``configured_points()`` by default."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = generate_dataset(configured_points() if points is None else points)
        return _shared


def shared_dataset() -> Dataset:
    """The process-wide dataset, loaded on first use if the server hook has not run."""
    return _shared if _shared is not None else load_shared_dataset()


def unload_shared_dataset() -> None:
    """Forget the process-wide dataset."""
    global _shared
    with _shared_lock:
        _shared = None


def session_working_copy(dataset: Dataset, payload_mb: float) -> np.ndarray:
    """A per-session array of about ``payload_mb`` MB derived from the shared ``y`` values."""
    count = max(int(payload_mb * 2**20) // 8, PLOT_POINTS)
    # np.resize's values (``y`` repeated), but exactly ``count`` elements that own their memory:
    # np.resize slices a concatenated copy, so its result is a view that keeps a whole copy of
    # ``y`` alive (30 MB per session for a 2M-point dataset, whatever ``payload_mb`` says).
    source = dataset.y
    working = np.empty(count, dtype=source.dtype)
    filled = min(count, source.size)
    working[:filled] = source[:filled]
    while filled < count:  # ``filled`` is a multiple of source.size here: double the repeats
        step = min(filled, count - filled)
        working[filled : filled + step] = working[:step]
        filled += step
    return working


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average of ``values`` over ``window`` samples, downsampled to ``PLOT_POINTS``."""
    step = max(values.size // PLOT_POINTS, 1)
    sampled = values[::step][:PLOT_POINTS]
    if window <= 1:
        return sampled.copy()
    kernel = np.ones(window) / window
    return np.convolve(sampled, kernel, mode="same")
