#!/usr/bin/env bash
# The whole test suite from a fresh clone: system packages, .venv, lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/setup.sh
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== import contracts"; PYTHONPATH=$PWD .venv/bin/lint-imports
echo "== pytest"; .venv/bin/python -m pytest "$@"
