"""The Markdown report of a demo run (`python -m tinytape demo`): report.md in the run folder.

Per stage: a heading, what the stage shows (tied to the lecture "Pretraining & Fine-tuning"),
the command that reproduces it, its tables, targets (with their 95% intervals and verdicts)
and protocol from the stage's results.json, its PNG plots (linked relative to the run
folder), log and checkpoints. Every stage writes results.json in the one shared schema
(tinytape.experiments.protocol), and that is all the report reads: a file in another shape
is reported as such, never guessed at.

    from tinytape.report import write_report
    write_report("runs/demo", summary)   # summary: the demo's record, demo.json
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence
from typing import Any

from .experiments.protocol import RESULTS_FILE, read_results, render_results
from .plotting import INSTALL_HINT, have_matplotlib

# --------------------------------------------------------------------------- the stages
#: stage name -> (title, what it shows: tied to the lecture)
STAGES: dict[str, tuple[str, str]] = {
    "checks": (
        "Self-checks: kernels and gradients",
        "The lecture builds backpropagation as *module-based autodiff*: each module has a "
        "forward and a backward, the forward pass is pushed onto a tape, and the tape is "
        "replayed in reverse. Its advice for debugging: \"just run a finite-difference check "
        "on each layer separately\". This stage does that for every differentiable op in "
        "tinytape's registry (each of its sample inputs, in float64) and for whole modules, "
        "from the lecture's own network (Linear, Sigmoid, Linear, softmax, cross-entropy) to "
        "a small GPT, after checking the C kernels (GEMM, softmax, cross-entropy, layer norm, "
        "GELU, attention, Adam) "
        "against their numpy references. The error is |analytic - numeric| / (1 + |numeric|) "
        "along a random direction."),
    "layerwise": (
        "Greedy layer-wise pretraining, then fine-tuning (digits)",
        "The lecture's \"reality\": a tiny labelled set, a deep network, and "
        "\"gradient-based optimization starting from random initialization appears to often "
        "get stuck in poor solutions for such deep networks\". The fix of Bengio et al. "
        "(2006): shallow networks are easy to train, so train the deep one **one layer at a "
        "time**, from the input up, freezing the layers below, either *supervised* (each "
        "layer with a temporary head predicting the labels) or *unsupervised* (a denoising "
        "autoencoder minimising the reconstruction error ||x - h(x)||, which needs no "
        "labels); then swap the last layer for a fresh head and fine-tune all the weights. "
        "A deep MLP on scikit-learn's 8x8 digits with k labelled images per class; the other "
        "training images, without labels, are the pool the autoencoder learns from."),
    "lm": (
        "Language-model pretraining",
        "\"Key observation: you can pre-train on basically any labelled or unlabelled "
        "dataset\": GPT-3 pretrained on hundreds of billions of tokens of web text, books and "
        "Wikipedia. Here a small GPT, built from the lecture's Transformer layer (attention, "
        "feed-forward network, layer normalization, residual connections, positional "
        "encodings), learns to predict the next character of Python's bundled documentation "
        "(no download). Validation bits per character against unigram and bigram baselines: "
        "a model that uses its context beats the bigram."),
    "authors": (
        "Fine-tuning on a tiny labelled set: who wrote this passage?",
        "The lecture's running example: \"a niche task ... predicting the author of "
        "children's books\" with \"a tiny labelled dataset\". A GPT is pretrained on "
        "unlabelled text (the large general fortune collection, or other authors of a seeded "
        "synthetic library), then, with k labelled passages per source (the limerick, "
        "Murphy's-law, Star Trek and Zippy collections, or the library's target authors), "
        "(b) fine-tuned with a classification head, against (a) the same Transformer "
        "trained from scratch, (c) a linear probe on the frozen pretrained features and (d) "
        "bag-of-words logistic regression. Test passages are other fortunes of the same "
        "collections, or other books of the same authors."),
    "icl": (
        "In-context against in-weights learning (Chan et al. 2022); the copy task",
        "\"What if you don't have enough data to fine-tune?\" In-context learning passes a "
        "few examples in the prompt \"without performing any updates to the parameters\". "
        "As Chan et al. (2022) test it: a small Transformer sees (item, label) pairs, noisy "
        "exemplars of classes with fixed labels drawn from a Zipfian distribution, in "
        "sequences that are *bursty* (the query's class fills half the context) with "
        "probability p_bursty; it is then scored in context (classes never trained on, "
        "labels given only in the prompt) and in weights (trained classes, an "
        "uninformative prompt). The copy task (a fresh key -> label mapping per sequence) is "
        "kept as one condition: how many seeds leave its plateau within the budget."),
    "rlhf": (
        "RLHF: supervised fine-tuning, reward model, PPO",
        "\"What if the concept of labelled data doesn't apply, e.g. chatbots?\" RLHF, the "
        "lecture's three steps (InstructGPT): (1) fine-tune the pretrained model on "
        "demonstrations; (2) train a reward model on labelers' rankings of several outputs "
        "(here a programmatic labeler that agrees with the true preference 73% of the time); "
        "(3) optimize the policy against the reward model with PPO and a KL penalty to the "
        "step-1 policy. The task is small enough to compute the best KL-regularized policy "
        "exactly, so every method is placed on one reward-against-KL picture: PPO over "
        "several KL targets, DPO over several beta, best-of-n over n, the exact optimum; "
        "held-out prompts use symbol sets (so reward tables) never seen in training, choices "
        "are made on validation sets, intervals are over seeds."),
}

#: PNG file name -> caption
CAPTIONS = {
    "layerwise.png": "test accuracy against labelled examples per class, per arm",
    "lm_curve.png": "loss curve: bits per character against training steps",
    "authors.png": "test accuracy against labelled passages per author, per method",
    "icl.png": "in-context and in-weights accuracy against burstiness and against the Zipf "
               "exponent; the copy task's validation accuracy per seed during training",
    "rlhf_frontier.png": "true reward and win rate against KL to SFT (mean and 95% interval "
                         "over seeds): PPO over KL targets, DPO over beta, best-of-n over n, "
                         "and the exact optimum's curves",
    "rlhf_overoptimization.png": "over-optimization (Gao et al. 2022): best-of-n's true and "
                                 "proxy reward against sqrt(KL), per reward-model size",
}

# --------------------------------------------------------------------------- helpers
def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]],
             align: str | None = None) -> str:
    """A Markdown table; `align` is one character per column, "l" or "r" (default: the
    first column left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value).replace("|", "\\|")


def load_results(stage_dir: str) -> tuple[dict[str, Any] | None, str]:
    """(results, "") of a stage's results.json in the shared schema; (None, why) when the
    file is missing or in another shape."""
    path = os.path.join(stage_dir, RESULTS_FILE)
    if not os.path.isfile(path):
        return None, "no results.json"
    try:
        return read_results(path), ""
    except ValueError as e:
        return None, str(e)


def _files(stage_dir: str, ext: str) -> list[str]:
    """Files under stage_dir ending in ext, relative to stage_dir, sorted (top level first)."""
    found = []
    for root, _, names in os.walk(stage_dir):
        for n in names:
            if n.endswith(ext):
                found.append(os.path.relpath(os.path.join(root, n), stage_dir))
    return sorted(found, key=lambda p: (p.count(os.sep), p))


def _size(path: str) -> str:
    n = os.path.getsize(path)
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def headline(results: dict[str, Any] | None) -> str:
    """One line with a stage's first target: its value, 95% interval and verdict (empty
    without results or targets)."""
    if not results or not results.get("targets"):
        return ""
    t = results["targets"][0]
    lo, hi = t["ci95"]
    ci = "" if lo is None or lo == hi else f" [{lo:.3g}, {hi:.3g}]"
    return f"{t['name']}: {t['value']:.3g}{ci} ({t['verdict']})"


# --------------------------------------------------------------------------- the report
def _fmt_seconds(s: float | None) -> str:
    return "-" if s is None else f"{s:.1f}"


def _stage_section(run_dir: str, i: int, st: dict[str, Any], plots_possible: bool) -> list[str]:
    name = st["name"]
    title, about = STAGES.get(name, (st.get("title", name), ""))
    stage_dir = os.path.join(run_dir, name)
    rel = name
    out = [f"## {i}. {title}", ""]
    if about:
        out += [about, ""]
    if st.get("commands"):
        out += ["```bash"] + [f"python -m tinytape {shlex.join(c)}" for c in st["commands"]] + \
            ["```", ""]
    status = st.get("status")
    if status == "not available":
        out += [f"**Not available**: this install has no `{st.get('command', name)}` command "
                "yet.", ""]
        return out
    if status == "skipped":
        out += ["Skipped: the demo was interrupted before this stage.", ""]
        return out
    timing = (f"{_fmt_seconds(st.get('wall_seconds'))} s wall, "
              f"{_fmt_seconds(st.get('cpu_seconds'))} s CPU")
    if status != "ok":
        out += [f"**Stage failed** ({status}, exit code {st.get('exit_code')}) after {timing}."]
        if st.get("error"):
            out += ["", "```", st["error"].strip(), "```"]
        out += [f"Full output: [{rel}/log.txt]({rel}/log.txt).", ""]
    else:
        out += [f"Finished in {timing}.", ""]
    results, why = load_results(stage_dir)
    if results:
        tables = list(results["tables"])
        out += [render_results(results, tables), ""]
        if results["targets"]:
            out += ["The stage's targets with their 95% intervals (set for its full-size "
                    "run: smaller sizes give wide intervals, and one seed none):", "",
                    render_results(results, ["targets"]), ""]
        out += [render_results(results, ["protocol"]), ""]
    elif status == "ok":
        out += [f"(no results to show: {why})", ""]
    sample = os.path.join(stage_dir, "sample.txt")
    if os.path.isfile(sample):
        with open(sample, encoding="utf-8", errors="replace") as f:
            text = f.read().strip()
        if text:
            out += ["A sample from the model (`lm sample`, temperature 0.8):", "", "```text",
                    text[:600], "```", ""]
    pngs = _files(stage_dir, ".png") if os.path.isdir(stage_dir) else []
    for p in pngs:
        cap = CAPTIONS.get(os.path.basename(p), os.path.splitext(os.path.basename(p))[0])
        out += [f"![{cap}]({rel}/{p.replace(os.sep, '/')})", "", f"*{cap}*", ""]
    if not pngs and results and name != "checks" and not plots_possible:
        out += ["No plot: matplotlib is not installed (`pip install 'tinytape[plot]'`, then "
                "run the demo again).", ""]
    files = []
    if results:
        files.append(f"figures [{rel}/{RESULTS_FILE}]({rel}/{RESULTS_FILE})")
    for extra in ("metrics.jsonl", "log.txt"):
        if os.path.isfile(os.path.join(stage_dir, extra)):
            files.append(f"[{rel}/{extra}]({rel}/{extra})")
    ckpts = _files(stage_dir, ".safetensors") if os.path.isdir(stage_dir) else []
    if ckpts:
        files.append("checkpoints " + ", ".join(
            f"[{rel}/{c}]({rel}/{c.replace(os.sep, '/')}) "
            f"({_size(os.path.join(stage_dir, c))})" for c in ckpts))
    if files:
        out += ["Files: " + "; ".join(files) + ".", ""]
    return out


def render(run_dir: str, summary: dict[str, Any]) -> str:
    """The report's Markdown text."""
    stages = summary.get("stages", [])
    plots_possible = have_matplotlib()
    quick = summary.get("quick")
    lines = ["# tinytape demo report", ""]
    lines += ["tinytape is a tape-based reverse-mode autograd engine for Python over numpy "
              "with C kernels. This run goes through the lecture \"Pretraining & "
              "Fine-tuning\" end to end with it: checking that backpropagation is right, "
              "greedy layer-wise pretraining, language-model pretraining, fine-tuning on a "
              "tiny labelled set, in-context learning and RLHF. Every stage is also its own "
              "command (shown in each section).", ""]
    cfg = summary.get("config", {})
    lines += [f"- backend: **{cfg.get('backend', '?')}** (SIMD {cfg.get('simd', '?')}, "
              f"{summary.get('threads', '?')} kernel thread(s))"
              + ("; the numpy reference kernels, chosen with TINYTAPE_BACKEND=numpy: slow"
                 if cfg.get("backend") == "numpy" else ""),
              f"- command: `{summary.get('command', 'python -m tinytape demo')}`",
              f"- started {summary.get('started', '?')}; tinytape {summary.get('version', '?')}"
              f", seed {summary.get('seed', '?')}",
              f"- total {_fmt_seconds(summary.get('wall_seconds'))} s wall, "
              f"{_fmt_seconds(summary.get('cpu_seconds'))} s CPU "
              f"(CPU counts every process and thread; wall depends on the machine's load)", ""]
    if quick:
        lines += ["> These are the **--quick** sizes (about a minute): they show that every "
                  "stage runs, not the effects, and the targets are not expected to hold. Run "
                  "`python -m tinytape demo` (about 10 minutes on 2 cores) for the real "
                  "picture.", ""]
    if not plots_possible:
        lines += [f"> **No plots in this report**: {INSTALL_HINT}; then run the demo again "
                  "to get the loss curves, accuracy against labels per class, accuracy "
                  "against shots and reward against KL.", ""]
    lines += ["## Summary", ""]
    rows = []
    for i, st in enumerate(stages, 1):
        title = STAGES.get(st["name"], (st.get("title", st["name"]), ""))[0]
        rows.append([i, f"[{title}](#{_anchor(i, title)})", st.get("status", "?"),
                     _fmt_seconds(st.get("wall_seconds")), _fmt_seconds(st.get("cpu_seconds")),
                     st.get("headline") or ""])
    lines += [md_table(["#", "stage", "status", "wall (s)", "CPU (s)", "result"], rows,
                       "rllrrl"), ""]
    for i, st in enumerate(stages, 1):
        lines += _stage_section(run_dir, i, st, plots_possible)
    lines += ["## Files", "",
              "Each stage wrote into its own folder here: `results.json` (the figures of "
              "this report), `metrics.jsonl` (every logged step), `log.txt` (its output), "
              "PNG plots and `.safetensors` checkpoints where it has them. The demo's own "
              "record (stages, commands, times) is [demo.json](demo.json).", ""]
    return "\n".join(lines)


def _anchor(i: int, title: str) -> str:
    """GitHub's anchor of the heading '{i}. {title}'."""
    text = f"{i}. {title}".lower()
    keep = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return keep.replace(" ", "-")


def write_report(run_dir: str, summary: dict[str, Any]) -> str:
    """Write run_dir/report.md from the demo's summary and each stage's files; its path."""
    path = os.path.join(run_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(run_dir, summary))
    return path
