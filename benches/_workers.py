"""The benches' worker processes: one fresh process per thread count, every library in it
given the same number of threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """This process's environment with OpenMP, OpenBLAS and MKL set to `threads` threads."""
    return {**os.environ, **{name: str(threads) for name in THREAD_VARIABLES}}


def run_worker(script: str, worker: str, threads: int, args: list[str]) -> Any:
    """Run `python script --worker worker --out PATH *args` with thread_env(threads) and
    return the JSON the worker wrote to PATH."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, script, "--worker", worker, "--out", out.name, *args]
        subprocess.run(cmd, env=thread_env(threads), check=True)
        with open(out.name) as f:
            return json.load(f)
