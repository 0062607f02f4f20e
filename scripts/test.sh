#!/usr/bin/env bash
# Runs the whole template test suite in its own venv (.venv), created on first use.
# Extra interpreters for the rendered project's suite: TEMPLATE_TEST_PYTHONS=/path/python3.12:...
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "error: Python >= 3.10 is required (PYTHON=$PYTHON)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
exec .venv/bin/python -m pytest "$@"
