"""Kill a training run with SIGKILL at random moments, resume it each time, and check that it
ends with exactly the weights of an uninterrupted run.

    python stress/kill_resume.py                  # 20 kills, 1500 steps
    python stress/kill_resume.py --kills 3 --steps 200

First a reference run of the tiny GPT (stress/tiny_gpt.py) goes to the end in a child
process. Then the same run is started again and again in a child with resume=True, each
time killed with SIGKILL a random time after it is ready (uniform over 1.2 times the
reference's training time divided by the kills + 1, so the kills land anywhere: in a step, in
a checkpoint write, between the rename of the latest checkpoint and the write of the new
one). After the last kill the run is resumed to the end. The final checkpoints must hold
bit-equal model and optimizer tensors, generator states and step counts. Prints the kills
survived and the resumes that fell back to the previous checkpoint; exits 1 on any
difference, or when the run ended before all the kills were made (use more --steps).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
CKPT = "ckpt.safetensors"


def worker(directory: str, steps: int, every: int) -> int:
    sys.path.insert(0, HERE)
    from tiny_gpt import make_trainer

    trainer = make_trainer(steps, checkpoint=os.path.join(directory, CKPT), checkpoint_every=every)
    print("ready", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(resume=True)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr, flush=True)
    return 0


def start(directory: str, args) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            directory,
            "--steps",
            str(args.steps),
            "--checkpoint-every",
            str(args.checkpoint_every),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.wait()
        raise RuntimeError(f"worker failed to start: {line}{proc.stderr.read()}")


def finish(proc: subprocess.Popen, what: str) -> str:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {err}")
    return err


def compare(ref_path: str, run_path: str) -> list[str]:
    from tinytape.serialization import load_file

    (a, meta_a), (b, meta_b) = load_file(ref_path), load_file(run_path)
    diffs = [
        f"tensor {k}"
        for k in sorted(set(a) | set(b))
        if k not in a or k not in b or a[k].tobytes() != b[k].tobytes()
    ]
    if meta_a.get("tinytape") != meta_b.get("tinytape"):
        diffs.append("metadata (step, optimizer scalars, schedule or generator states)")
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--checkpoint-every", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0, help="of the kill times")
    ap.add_argument("--worker", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.steps, args.checkpoint_every)

    rand = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        ref_dir, run_dir = os.path.join(tmp, "reference"), os.path.join(tmp, "killed")
        os.makedirs(ref_dir)
        os.makedirs(run_dir)
        proc = start(ref_dir, args)
        wait_ready(proc)
        t0 = time.perf_counter()
        finish(proc, "the reference run")
        train_time = time.perf_counter() - t0
        # a mean of 0.6 T / (kills + 1) per run: the kills spread over the first ~60% of
        # the steps, and the run cannot end before the last kill
        max_delay = 1.2 * train_time / (args.kills + 1)
        print(
            f"kill_resume: reference run of {args.steps} steps trained in {train_time:.1f} s; "
            f"kills at uniform random times in [0, {max_delay:.2f}] s after each start"
        )
        kills = fallbacks = 0
        while kills < args.kills:
            proc = start(run_dir, args)
            wait_ready(proc)
            time.sleep(rand.uniform(0.0, max_delay))
            if proc.poll() is not None:  # finished before the kill
                finish(proc, "a resumed run")
                break
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate()
            kills += 1
            fallbacks += err.count("resumed from the previous one")
        proc = start(run_dir, args)  # the last resume, to the end
        wait_ready(proc)
        err = finish(proc, "the last resumed run")
        fallbacks += err.count("resumed from the previous one")
        diffs = compare(os.path.join(ref_dir, CKPT), os.path.join(run_dir, CKPT))
    print(
        f"kill_resume: {kills} SIGKILLs survived ({fallbacks} resumes fell back to the "
        f"previous checkpoint); final state "
        f"{'bit-equal to the uninterrupted run' if not diffs else 'DIFFERS: ' + ', '.join(diffs)}"
    )
    if kills < args.kills:
        print(f"kill_resume: the run ended after {kills} of {args.kills} kills: use more --steps")
        return 1
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
