"""The demo's data: a seeded time series, per-session working copies of it, and the smoothing.

``shared.py`` declares the one dataset every session of a process shares, ``main.py`` derives
each session's working copy from it. Two knobs size them (env ``<PACKAGE>_DATASET_POINTS`` and
``<PACKAGE>_SESSION_PAYLOAD_MB``; the benchmarks raise them). Replace this module with your own data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import app_setting

SHARED_POINTS = 100_000
PLOT_POINTS = 2_000
_SEED = 20_26


def dataset_points() -> int:
    """Points of the shared dataset: ``SHARED_POINTS`` unless ``<PACKAGE>_DATASET_POINTS`` says."""
    return app_setting("dataset_points", SHARED_POINTS)


def session_payload_mb() -> float:
    """MB of working data each session derives: 2 unless ``<PACKAGE>_SESSION_PAYLOAD_MB`` says."""
    return app_setting("session_payload_mb", 2.0)


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
