"""What the app shares by every session of a process: declared here, loaded by the runtime.

The runtime loads each ``@per_process`` declaration before the first session and drops it when
the server stops (``app_hooks.py`` imports this module so that the declarations exist by then).
Keep only read-only data here; what a session changes belongs in its ``session_context.locals``.
"""

from __future__ import annotations

from .. import per_process
from .data import Dataset, dataset_points, generate_dataset


@per_process
def dataset() -> Dataset:
    """The demo's reference series, read-only."""
    return generate_dataset(dataset_points())
