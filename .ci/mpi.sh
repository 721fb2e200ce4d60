#!/usr/bin/env bash
# Data-parallel tests under mpiexec -n 2: install the `mpi` extra (mpi4py and the MPICH
# wheel, which puts mpiexec into the virtual environment) into the active virtual
# environment, then run tests/test_distributed.py, which starts its two-process runs with
# `mpiexec -n 2` (each with its own timeout). TINYTAPE_REQUIRE_MPI=1 turns "MPI missing"
# into a failure instead of a skip. Run from the repository root inside an activated venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# the extra's requirements, read from pyproject.toml (no rebuild of the C extension)
mapfile -t reqs < <(python - <<'PY'
import re
text = open("pyproject.toml", encoding="utf-8").read()
block = re.search(r'^mpi = \[(.*?)\]', text, re.M | re.S).group(1)
print("\n".join(re.findall(r'"([^"]+)"', block)))
PY
)
python -m pip install --quiet "${reqs[@]}"
export TINYTAPE_REQUIRE_MPI=1 OMP_NUM_THREADS=1
timeout 900 python -m pytest -q tests/test_distributed.py tests/test_grad_hooks.py
