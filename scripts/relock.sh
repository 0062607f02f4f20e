#!/usr/bin/env bash
# Regenerate {{cookiecutter.project_slug}}/uv.lock after a change of the rendered pyproject.toml's
# dependencies: bake the default project (with the current lock), `uv lock` it (keeping every pin
# that still fits; pass --upgrade or --upgrade-package NAME to move pins), and write the lock back
# with the project's name as the one Jinja expression. tests/test_lock.py checks the result.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/uv ] || { echo "error: run scripts/test.sh once first (it installs uv into .venv)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.venv/bin/cookiecutter --no-input --output-dir "$work" .
.venv/bin/uv lock --directory "$work/bokeh-dashboard" "$@"
sed 's/^name = "bokeh-dashboard"$/name = "{{ cookiecutter.project_slug }}"/' \
    "$work/bokeh-dashboard/uv.lock" > "{{cookiecutter.project_slug}}/uv.lock"
echo "wrote {{cookiecutter.project_slug}}/uv.lock"
