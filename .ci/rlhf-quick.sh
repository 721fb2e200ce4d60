#!/usr/bin/env bash
# The RLHF experiment's whole protocol at toy size (`--quick`: 2 seeds in 2 processes, held-out
# symbol sets, choices on validation, best-of-n, PPO and DPO frontiers, over-optimization),
# then its results.json read back through the shared schema. Run from the repository root
# inside an activated environment with tinytape installed.
set -euo pipefail
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
python -m tinytape rlhf --quick --no-plots --out "$out/rlhf"
python -m tinytape report "$out/rlhf" > /dev/null
echo "rlhf --quick: results.json in the shared schema"
