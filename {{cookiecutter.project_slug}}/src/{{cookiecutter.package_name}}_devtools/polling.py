"""Wait for a condition: the one polling loop of the tests, benchmarks and leak check."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Call ``condition`` every ``interval`` seconds until it is true or ``timeout`` passed.

    Returns whether it became true; it is checked once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
