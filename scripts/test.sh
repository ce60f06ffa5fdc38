#!/usr/bin/env bash
# Set up and run every check: install (CPU torch first, so pip does not pull a CUDA build),
# then lint, format check, type check and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev,demo]"
echo "== ruff"; python3 -m ruff check edgeres tests benchmarks
echo "== ruff format"; python3 -m ruff format --check edgeres tests benchmarks
echo "== mypy"; python3 -m mypy
echo "== pytest"; python3 -m pytest "$@"
