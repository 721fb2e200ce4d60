#!/usr/bin/env bash
# The test suite on the plain-Python tape: the installed tinytape with its Cython-compiled
# tape modules (setup.py) bypassed for their .py sources. Run from the repository root
# inside the virtual environment where tinytape is installed, as `pytest -q` is.
set -euo pipefail
cd "$(dirname "$0")/.."
export TINYTAPE_PURE_PYTHON=1
# -I: the installed package, as pytest sees it, not the checkout in the current directory
python -I -c "import tinytape; tape = tinytape.config()['tape']; print('tape:', tape); \
assert tape == 'Python', tape"
python -m pytest -q "$@"
