"""Import the template's hook scripts as ordinary modules so tests can call their functions.

The hooks live in ``hooks/`` (not a package) and are Jinja templates until cookiecutter renders
them; they are written to import cleanly unrendered, which is what this loader relies on.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
HOOKS_DIR = TEMPLATE_ROOT / "hooks"


def load_hook(name: str) -> ModuleType:
    """Load ``hooks/<name>.py`` (unrendered) under the module name ``hook_<name>``."""
    path = HOOKS_DIR / f"{name}.py"
    module_name = f"hook_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load hook {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
