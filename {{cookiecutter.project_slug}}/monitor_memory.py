"""``python monitor_memory.py``, as the memory-management guide runs it: this project's monitor.

Same options as ``python -m <package> monitor`` (``--help`` lists them). Works from a checkout without
installing the project: the package's ``monitor.py`` is then loaded from ``src/`` by file path (it
needs only ``psutil``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

PACKAGE = "{{ cookiecutter.package_name }}"


def load_monitor() -> ModuleType:
    """The installed ``<package>.monitor``, else the one under ``src/`` next to this file."""
    try:
        return importlib.import_module(f"{PACKAGE}.monitor")
    except ImportError:
        path = Path(__file__).resolve().parent / "src" / PACKAGE / "monitor.py"
        spec = importlib.util.spec_from_file_location(f"_{PACKAGE}_monitor", path)
        if spec is None or spec.loader is None:
            raise
        monitor = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = monitor  # dataclasses look their module up while the class is built
        spec.loader.exec_module(monitor)
        return monitor


if __name__ == "__main__":
    raise SystemExit(load_monitor().main())
