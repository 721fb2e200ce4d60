#!/usr/bin/env bash
# Short versions of the long-run and fault checks (stress/): resident memory over 2,000
# training steps of the tiny GPT, and a run killed with SIGKILL 3 times and resumed, which
# must end bit-equal to an uninterrupted one. The full sizes (10,000 steps, 20 kills) are the
# scripts' defaults: python stress/memory.py; python stress/kill_resume.py.
# Run from the repository root inside an activated virtual environment with tinytape
# installed.
set -euo pipefail
cd "$(dirname "$0")/.."
python stress/memory.py --steps 2000 --warmup 500
python stress/kill_resume.py --kills 3 --steps 200 --checkpoint-every 10
