#!/usr/bin/env bash
# The kernel tests (and a short fuzz run) against a build of csrc with AddressSanitizer and
# UndefinedBehaviorSanitizer. Any finding stops the run with a report and a non-zero exit.
#
# Run from the repository root inside an activated virtual environment that has the test
# extras (pytest, hypothesis); the build needs a C compiler with the sanitizer runtimes
# (GCC or clang) and pip's build isolation (network access, or a warm pip cache). The
# sanitized build goes into a temporary directory: the installed tinytape is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "sanitize: building into $work"
# from a copy of the sources, so that no build directory is shared with the normal build
mkdir "$work/src"
cp -r setup.py pyproject.toml README.md csrc tinytape "$work/src/"
# no build products of the checkout (an in-place build may be under way beside this one)
find "$work/src/tinytape" \( -name '*.so' -o -name '*.c' -o -name '*.html' \) -delete
# the kernels are what is sanitized; the tape runs from its Python sources here
TINYTAPE_SANITIZE=1 TINYTAPE_COMPILE_TAPE=0 python -m pip install --quiet --no-deps --target "$work/site" "$work/src"
cp -r tests fuzz pyproject.toml "$work/"

# The ASan runtime must come first in the process: preload it into python.
CC="${CC:-$(python -c 'import sysconfig; print((sysconfig.get_config_var("CC") or "cc").split()[0])')}"
libasan="$("$CC" -print-file-name=libasan.so)"
if [ ! -e "$libasan" ]; then
    echo "sanitize: no libasan.so found by $CC -print-file-name" >&2
    exit 2
fi
export LD_PRELOAD="$libasan"
# Python's own allocations are never freed at exit (that is not a leak of ours), and the
# first finding ends the run.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$work/site"
export TINYTAPE_MALLOC_TUNING=0

cd "$work"
python - <<'PY'
import os
import tinytape
info = tinytape.config()
assert tinytape.__file__.startswith(os.environ["PYTHONPATH"]), tinytape.__file__
assert info["backend"] == "c" and "-fsanitize=address,undefined" in info["build"], info
print(f"sanitize: {tinytape.__file__}: {info['build']}")
PY
python -m pytest -q -p no:cacheprovider \
    tests/test_gemm.py tests/test_softmax.py tests/test_cross_entropy.py \
    tests/test_layer_norm.py tests/test_gelu.py tests/test_elementwise.py \
    tests/test_attention_kernel.py \
    tests/test_adam_kernel.py tests/test_nonfinite.py tests/test_concurrency.py \
    tests/test_row_threads.py
python fuzz/kernels.py --calls "${SANITIZE_FUZZ_CALLS:-20000}" --seed 1
echo "sanitize: no findings"
