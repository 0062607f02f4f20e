"""glibc tuning in ``memory.py``: applied by default, left alone when the environment decides.

Each check runs in a fresh interpreter: ``mallopt`` changes the whole process for good.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from {{ cookiecutter.package_name }}.server import memory

ON_GLIBC = memory.trim_supported()


def call_in_fresh_python(function: str, **env: str) -> str:
    code = f"import {memory.__name__} as memory; print(memory.{function}())"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    command = [sys.executable, "-c", code]
    completed = subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_arena_cap_is_applied_unless_malloc_arena_max_is_set() -> None:
    assert call_in_fresh_python("limit_arenas") == str(ON_GLIBC)
    # Control: the operator's MALLOC_ARENA_MAX wins, the function must not override it.
    assert call_in_fresh_python("limit_arenas", MALLOC_ARENA_MAX="4") == "False"


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt is glibc's")
def test_mmap_threshold_is_fixed_on_glibc() -> None:
    assert call_in_fresh_python("use_mmap_for_large_blocks") == "True"
