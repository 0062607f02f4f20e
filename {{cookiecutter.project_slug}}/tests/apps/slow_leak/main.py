"""NEGATIVE CONTROL for the soak test: the project's own app plus a slow leak.

It runs the project's ``main.py`` unchanged (in this session's module, so its cleanups and globals
behave as in the real app), then keeps ``SLOW_LEAK_BYTES`` per session in a module that outlives
every session. The soak test's slope must catch it.
"""

from __future__ import annotations

import os
from pathlib import Path

import slow_leak_registry

from {{ cookiecutter.package_name }}.server.serve import APP_DIR

app_main = Path(APP_DIR) / "main.py"
exec(compile(app_main.read_text(), str(app_main), "exec"))  # the project's app, verbatim
slow_leak_registry.keep(int(os.environ.get("SLOW_LEAK_BYTES", "65536")))  # the leak
