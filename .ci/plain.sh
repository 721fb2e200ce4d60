#!/usr/bin/env bash
# The test suite on the plain-Python tape: the same checkout as `pytest -q`, with the
# Cython-compiled tape modules (setup.py) bypassed for their .py sources. Run from the
# repository root inside a virtual environment where tinytape is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export TINYTAPE_PURE_PYTHON=1
python -c "import tinytape; tape = tinytape.config()['tape']; print('tape:', tape); \
assert tape == 'Python', tape"
python -m pytest -q "$@"
