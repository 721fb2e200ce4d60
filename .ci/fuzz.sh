#!/usr/bin/env bash
# Differential fuzzing of the C kernels against their numpy references (fuzz/kernels.py):
# 100,000 calls over every SIMD path of this CPU, 1 and 2 threads; any mismatch fails.
# Run from the repository root inside an activated virtual environment with tinytape
# installed. FUZZ_CALLS and FUZZ_SEED override the defaults (the seed is the CI run's
# number when given, so successive runs explore different calls).
set -euo pipefail
cd "$(dirname "$0")/.."
python fuzz/kernels.py --calls "${FUZZ_CALLS:-100000}" --seed "${FUZZ_SEED:-${GITHUB_RUN_NUMBER:-0}}"
