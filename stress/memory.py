"""Resident memory over a long training run of the tiny GPT: flat after warm-up.

    python stress/memory.py                       # 10,000 steps, growth must stay < 5 MB
    python stress/memory.py --steps 2000 --warmup 300

Trains in this process, reading the resident set size (Linux: /proc/self/statm) every
`--every` steps; the growth is the last reading minus the first one after warm-up (the
allocator's pools, numpy's caches and the checkpoints' buffers settle during warm-up).
Prints the readings' summary; exits 1 when the growth reaches `--limit-mb`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_gpt import make_trainer  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--warmup", type=int, default=500, help="steps before the baseline")
    ap.add_argument("--every", type=int, default=250, help="steps between readings")
    ap.add_argument("--limit-mb", type=float, default=5.0)
    args = ap.parse_args(argv)
    if not os.path.exists("/proc/self/statm"):
        print("memory: needs Linux's /proc/self/statm", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        # checkpoints every 1000 steps too: their buffers must not accumulate either
        trainer = make_trainer(
            args.steps, checkpoint=os.path.join(tmp, "ckpt.safetensors"), checkpoint_every=1000
        )
        readings: list[tuple[int, float]] = []
        t0 = time.perf_counter()
        for stop in range(args.every, args.steps + args.every, args.every):
            trainer.fit(until=min(stop, args.steps))
            readings.append((trainer.step, rss_mb()))
        elapsed = time.perf_counter() - t0
    after = [(s, r) for s, r in readings if s >= args.warmup]
    base, last = after[0][1], after[-1][1]
    peak = max(r for _, r in after)
    growth = last - base
    print(
        f"memory: {trainer.step} steps in {elapsed:.0f} s; resident {readings[0][1]:.1f} MB "
        f"at step {readings[0][0]}, {base:.1f} MB at step {after[0][0]} (after warm-up), "
        f"{last:.1f} MB at step {after[-1][0]}, peak after warm-up {peak:.1f} MB"
    )
    print(f"memory: growth after warm-up {growth:+.2f} MB (limit {args.limit_mb} MB)")
    return 0 if growth < args.limit_mb else 1


if __name__ == "__main__":
    sys.exit(main())
