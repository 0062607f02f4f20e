#!/usr/bin/env bash
# Bakes the default project into ./build/bokeh-dashboard, installs it in its own venv and serves it
# on http://127.0.0.1:5006/app (Ctrl-C stops it). Extra arguments go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "error: Python >= 3.10 is required (PYTHON=$PYTHON)" >&2; exit 1; }
[ -x .venv-bake/bin/cookiecutter ] || { "$PYTHON" -m venv .venv-bake \
    && .venv-bake/bin/python -m pip install --quiet --disable-pip-version-check 'cookiecutter>=2.2'; }
.venv-bake/bin/cookiecutter --no-input --overwrite-if-exists --output-dir build .
cd build/bokeh-dashboard
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/python -m bokeh_dashboard serve "$@"
