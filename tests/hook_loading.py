"""Import the template's hook scripts as ordinary modules so tests can call their functions.

The hooks live in ``hooks/`` (not a package) and are Jinja templates until cookiecutter renders
them. ``load_hook`` imports one unrendered (they are written to import cleanly that way);
``load_rendered_hook`` first renders it the way cookiecutter's ``hooks.py`` does (the same
``StrictEnvironment`` with the template's extensions, the same context) and imports the result,
so tests also run the code users actually run.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
HOOKS_DIR = TEMPLATE_ROOT / "hooks"
_RENDER_COUNT = itertools.count()


def import_file(path: Path, module_name: str) -> ModuleType:
    """Import the Python file at ``path`` as a module called ``module_name``."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_hook(name: str) -> ModuleType:
    """Load ``hooks/<name>.py`` (unrendered) under the module name ``hook_<name>``."""
    return import_file(HOOKS_DIR / f"{name}.py", f"hook_{name}")


@contextmanager
def template_importable() -> Iterator[None]:
    """Put the template root on ``sys.path`` (as cookiecutter does) so ``local_extensions`` loads."""
    added = str(TEMPLATE_ROOT) not in sys.path
    if added:
        sys.path.append(str(TEMPLATE_ROOT))
    try:
        yield
    finally:
        if added:
            sys.path.remove(str(TEMPLATE_ROOT))


def sample_context(**answers: Any) -> dict[str, Any]:
    """The ``cookiecutter`` dict a ``--no-input`` bake with these extra answers hands to the hooks."""
    with template_importable():
        context = generate_context(str(TEMPLATE_ROOT / "cookiecutter.json"), extra_context=answers)
        return dict(prompt_for_config(context, no_input=True))


def render_hook_source(name: str, answers: Mapping[str, Any]) -> str:
    """``hooks/<name>.py`` rendered with ``answers`` exactly as cookiecutter's ``hooks.py`` renders it."""
    source = (HOOKS_DIR / f"{name}.py").read_text(encoding="utf-8")
    context = {"cookiecutter": dict(answers)}
    with template_importable():
        return create_env_with_context(context).from_string(source).render(**context)


def load_rendered_hook(name: str, answers: Mapping[str, Any], where: Path) -> ModuleType:
    """Render ``hooks/<name>.py`` with ``answers`` into ``where`` and import the rendered file."""
    path = where / f"rendered_{name}.py"
    path.write_text(render_hook_source(name, answers), encoding="utf-8")
    return import_file(path, f"rendered_{name}_{next(_RENDER_COUNT)}")
