"""``python monitor_memory.py``, as the memory-management guide runs it: this project's monitor.

Same options as ``python -m <package>_devtools.monitor`` (``--help`` lists them). Works from a
checkout without installing the project: ``src/`` is put on the import path first.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from {{ cookiecutter.package_name }}_devtools.monitor import main

if __name__ == "__main__":
    raise SystemExit(main())
