#!/usr/bin/env bash
# Set up and run every check: install (CPU torch first, so pip does not pull a CUDA build),
# then lint, format check, type check and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python3 -m pip install --quiet --disable-pip-version-check -e ".[dev,demo,openvino]"
# CI only: Chromium for the report's headless-browser test (tests/report/test_html_browser.py, which
# skips without it). About 1-2 minutes with apt-get update; a failure only makes that test skip.
if [ "${CI:-}" = "true" ] && command -v apt-get >/dev/null \
    && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    echo "== chromium (for the report's browser test)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
    { $SUDO timeout 300 apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive $SUDO timeout 600 apt-get install -y -qq chromium >/dev/null; } \
        || echo "chromium not installed: browser test will skip"
fi
echo "== ruff"; python3 -m ruff check edgeres tests benchmarks
echo "== ruff format"; python3 -m ruff format --check edgeres tests benchmarks
echo "== mypy"; python3 -m mypy
echo "== pytest"; python3 -m pytest "$@"
