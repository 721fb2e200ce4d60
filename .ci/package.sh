#!/usr/bin/env bash
# Packaging: build the sdist, build the wheel from that sdist (what `pip install` of an sdist
# does), check that the sdist holds every tracked file the build needs, then install the
# wheel in a fresh virtual environment and run `python -m tinytape check` outside the
# checkout: it must run on the C kernels. Run from the repository root in an activated venv.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python -c "import build" 2>/dev/null || python -m pip install --quiet build
python -m build --sdist --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/tinytape-*.tar.gz)
echo "sdist: $(basename "$sdist")"

# Every file of the build (C sources, headers, kernel templates, the binding, the package)
# must be in the sdist.
tar tzf "$sdist" | sed 's|^[^/]*/||' | sort >"$work/in-sdist"
git ls-files csrc tinytape setup.py pyproject.toml MANIFEST.in README.md | sort >"$work/needed"
missing=$(comm -23 "$work/needed" "$work/in-sdist")
if [ -n "$missing" ]; then
    echo "the sdist lacks files the build needs:"; echo "$missing"; exit 1
fi
echo "sdist holds all $(wc -l <"$work/needed") tracked build and package files"

python -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$sdist"
wheel=$(ls "$work"/dist/tinytape-*.whl)
echo "wheel built from the sdist: $(basename "$wheel")"

python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "$wheel"
(cd "$work" && "$work/venv/bin/python" -m tinytape check --quick --out "$work/check") | tee "$work/check.log"
head -n 1 "$work/check.log" | grep -q "backend c (SIMD" \
    || { echo "the installed wheel does not run on the C kernels"; exit 1; }
echo "package: ok"
