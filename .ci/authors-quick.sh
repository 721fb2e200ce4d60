#!/usr/bin/env bash
# The authors experiment's whole protocol at toy size (`--quick`: k = 1, 2; 2 seeds; a tiny
# GPT; the development library), then its results.json read back through the shared schema.
# Run from the repository root inside an activated environment with tinytape installed.
set -euo pipefail
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
python -m tinytape authors --quick --out "$out/authors"
python -m tinytape report "$out/authors" > /dev/null
echo "authors --quick: results.json in the shared schema"
