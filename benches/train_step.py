"""Training-step throughput of a small GPT: tinytape against PyTorch eager.

    python benches/train_step.py [--threads 1,2] [--steps 40] [--json PATH]

One step = forward, loss, backward, AdamW update, for a GPT with vocab 96, d_model 128,
2 layers, 4 heads, context 64, batch 16 (1,024 tokens a step), float32. Per thread count
(OMP/OpenBLAS/MKL thread variables set, and set_num_threads), one process times both
libraries taking turns in blocks of 5 steps (the order reversed every other block, the
process settled before each: benches/_rounds.py), so a slow spell of a shared machine
slows both alike; the median step gives tokens per second, and the medians of the blocks
their range (tinytape's speed as a multiple of PyTorch's is taken block by block). The
peak resident memory that training adds (sampled from /proc while the steps run) is
measured with each library alone in its own process. Targets (reported, not asserted):
tinytape at least 1.5x PyTorch eager's tokens per second, and at most 0.35x its peak
memory, at each thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from statistics import median, median_high
from typing import Any

from _rounds import take_turns
from _workers import run_worker

CONFIG = dict(vocab_size=96, context_length=64, d_model=128, n_layers=2, n_heads=4)
BATCH = 16
TARGET_SPEED = 1.5  # tinytape's tokens/s over PyTorch's
TARGET_MEMORY = 0.35  # tinytape's peak memory over PyTorch's


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler(threading.Thread):
    """Samples this process's resident memory every millisecond until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_bytes()
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.001)


def batches(steps: int):
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(steps):
        data = rng.integers(0, CONFIG["vocab_size"], (BATCH, CONFIG["context_length"] + 1))
        yield data[:, :-1], data[:, 1:]


def tinytape_stepper() -> Callable[[Any, Any], None]:
    """One training step of tinytape's GPT on a batch (x, y) of numpy token ids."""
    from tinytape.models import GPT, GPTConfig
    from tinytape.optim import AdamW

    model = GPT(GPTConfig(**CONFIG), generator=0)
    opt = AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)

    def step(x, y) -> None:
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def torch_gpt() -> Any:
    """The same model written with torch.nn: forward(idx, targets) -> the loss."""
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F

    c = CONFIG
    torch.manual_seed(0)

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            d = c["d_model"]
            self.ln1, self.ln2 = tnn.LayerNorm(d), tnn.LayerNorm(d)
            self.qkv, self.proj = tnn.Linear(d, 3 * d), tnn.Linear(d, d)
            self.fc, self.out = tnn.Linear(d, 4 * d), tnn.Linear(4 * d, d)

        def forward(self, x):
            b, t, d = x.shape
            h = c["n_heads"]
            q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
            return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.wte = tnn.Embedding(c["vocab_size"], c["d_model"])
            self.wpe = tnn.Embedding(c["context_length"], c["d_model"])
            self.blocks = tnn.ModuleList([Block() for _ in range(c["n_layers"])])
            self.ln_f = tnn.LayerNorm(c["d_model"])

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for blk in self.blocks:
                x = blk(x)
            logits = self.ln_f(x) @ self.wte.weight.T
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    return GPT()


def torch_stepper() -> Callable[[Any, Any], None]:
    """torch_gpt's training step."""
    import torch

    model = torch_gpt()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)

    def step(x, y) -> None:
        loss = model(torch.from_numpy(x), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


STEPPERS = {"tinytape": tinytape_stepper, "torch": torch_stepper}


def timed(step: Callable[[Any, Any], None], data: list) -> list[float]:
    times = []
    for x, y in data:
        t0 = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - t0)
    return times


def set_threads(lib: str, threads: int) -> None:
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        import tinytape

        tinytape.set_num_threads(threads)


def memory_worker(lib: str, threads: int, steps: int) -> dict:
    """Peak resident memory that `steps` training steps add, alone in this process."""
    set_threads(lib, threads)
    base = rss_bytes()
    sampler = PeakSampler()
    sampler.start()
    timed(STEPPERS[lib](), list(batches(steps)))
    sampler.running = False
    sampler.join()
    return {"peak_mem_mb": (sampler.peak - base) / 2**20}


def speed_worker(libs: list[str], threads: int, steps: int) -> dict:
    """Median step time of each library, the libraries taking turns in blocks of 5 steps
    in this one process, so that a slow spell of a shared machine hits both alike."""
    if "torch" in libs:
        # first: its OpenMP runtime (libgomp) loads before tinytape sets OMP_WAIT_POLICY, so
        # it keeps libgomp's defaults; tinytape's kernels then run on that same runtime
        import torch  # noqa: F401
    steppers = {}
    for lib in libs:
        set_threads(lib, threads)
        steppers[lib] = STEPPERS[lib]()
    data = list(batches(steps))
    for lib in libs:  # warm-up
        timed(steppers[lib], data[:3])
    per_block = take_turns(
        libs, (steps + 4) // 5, lambda lib, b: timed(steppers[lib], data[5 * b : 5 * b + 5])
    )
    times = {lib: [t for block in per_block[lib] for t in block] for lib in libs}
    blocks = {lib: [median(block) for block in per_block[lib]] for lib in libs}
    tokens = BATCH * CONFIG["context_length"]
    out = {
        lib: {
            "median_step_ms": median_high(t) * 1e3,
            "tokens_per_s": tokens / median_high(t),
            "block_step_ms": [b * 1e3 for b in blocks[lib]],
        }
        for lib, t in times.items()
    }
    if "torch" in libs and "tinytape" in libs:
        out["tinytape"]["speed_vs_torch"] = [
            b / a for a, b in zip(blocks["tinytape"], blocks["torch"])
        ]
    return out


def run_at(kind: str, spec: str, threads: int, steps: int) -> dict:
    """A speed or memory worker's figures at `threads` threads, from a fresh process."""
    return run_worker(__file__, f"{kind}:{spec}:{threads}", threads, ["--steps", str(steps)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument(
        "--steps",
        type=int,
        default=40,
        help="timed steps per library and thread count (after 3 warm-up)",
    )
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 5:
        parser.error("--steps must be at least 5")
    if args.worker:
        kind, spec, threads = args.worker.split(":")
        result = (
            memory_worker(spec, int(threads), args.steps)
            if kind == "memory"
            else speed_worker(spec.split(","), int(threads), args.steps)
        )
        with open(args.out, "w") as f:
            json.dump(result, f)
        return 0
    try:
        counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads must be integers separated by commas, got {args.threads!r}")
    libs = ["tinytape"]
    try:
        import torch  # noqa: F401

        libs.append("torch")
    except ImportError:
        print("PyTorch is not installed: tinytape only", file=sys.stderr)
    rows = []
    for threads in counts:
        print(f"{' and '.join(libs)} at {threads} thread(s)...", file=sys.stderr, flush=True)
        speed = run_at("speed", ",".join(libs), threads, args.steps)
        for lib in libs:
            memory = run_at("memory", lib, threads, 8)
            rows.append({"lib": lib, "threads": threads, **speed[lib], **memory})
    print(
        f"{'library':<10}{'threads':>8}{'step ms':>10}{'block range':>16}{'tokens/s':>12}"
        f"{'peak MB':>10}"
    )
    for r in rows:
        block = f"{min(r['block_step_ms']):.1f}-{max(r['block_step_ms']):.1f}"
        print(
            f"{r['lib']:<10}{r['threads']:>8}{r['median_step_ms']:>10.1f}{block:>16}"
            f"{r['tokens_per_s']:>12.0f}{r['peak_mem_mb']:>10.1f}"
        )
    for threads in counts:
        ours = [r for r in rows if r["lib"] == "tinytape" and r["threads"] == threads]
        theirs = [r for r in rows if r["lib"] == "torch" and r["threads"] == threads]
        if ours and theirs:
            ratio = ours[0]["tokens_per_s"] / theirs[0]["tokens_per_s"]
            per_block = ours[0]["speed_vs_torch"]
            print(
                f"target @{threads}t: {'ok  ' if ratio >= TARGET_SPEED else 'MISS'} tinytape "
                f"runs at {ratio:.2f}x PyTorch eager's tokens/s (blocks "
                f"{min(per_block):.2f}-{max(per_block):.2f}; target >= {TARGET_SPEED})"
            )
            mem = ours[0]["peak_mem_mb"] / max(theirs[0]["peak_mem_mb"], 1e-9)
            print(
                f"target @{threads}t: {'ok  ' if mem <= TARGET_MEMORY else 'MISS'} tinytape "
                f"adds {mem:.2f}x PyTorch's peak memory (target <= {TARGET_MEMORY})"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
