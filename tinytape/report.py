"""The Markdown report of a demo run (`python -m tinytape demo`): report.md in the run folder.

Per stage: a heading, what the stage shows (tied to the lecture "Pretraining & Fine-tuning"),
the command that reproduces it, its table(s) built from the stage's results.json, its
targets, its PNG plots (linked relative to the run folder), its JSON figures, log and
checkpoints. The tables are built defensively: a stage whose results.json has an unexpected
shape still gets a table of its top-level numbers.

    from tinytape.report import write_report
    write_report("runs/demo", summary)   # summary: the demo's results.json (stages, times)
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from collections.abc import Callable, Sequence
from typing import Any

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
        "In-context learning: accuracy against shots",
        "\"What if you don't have enough data to fine-tune?\" In-context learning passes a "
        "few examples in the prompt \"without performing any updates to the parameters\": "
        "zero-, one- and few-shot. A small GPT is trained on sequences of (key, label) pairs, "
        "*bursty* (a key comes back within a sequence with the same label, as words and "
        "topics do in real text) or *non-bursty*, and then scored with frozen weights on "
        "mappings it never saw, with 0, 1, 2, 4, ... example pairs before the query. Only "
        "the bursty model learns to read its context."),
    "rlhf": (
        "RLHF: supervised fine-tuning, reward model, PPO",
        "\"What if the concept of labelled data doesn't apply, e.g. chatbots?\" RLHF, the "
        "lecture's three steps (InstructGPT): (1) fine-tune the pretrained model on "
        "demonstrations; (2) train a reward model on labelers' rankings of several outputs "
        "(here a programmatic labeler that agrees with the true preference 73% of the time); "
        "(3) optimize the policy against the reward model with PPO and a KL penalty to the "
        "step-1 policy. The task is small enough to compute the best KL-regularized policy "
        "exactly; DPO on the same comparisons, and PPO without the KL penalty against a "
        "reward model from few comparisons (over-optimization), for comparison: reward "
        "against KL."),
}

#: PNG file name -> caption
CAPTIONS = {
    "layerwise.png": "test accuracy against labelled examples per class, per arm",
    "lm_curve.png": "loss curve: bits per character against training steps",
    "authors.png": "test accuracy against labelled passages per author, per method",
    "icl.png": "accuracy against shots (prior example pairs) with frozen weights; accuracy "
               "during training",
    "rlhf_methods.png": "win rate and KL per method; reward-model score and true reward "
                        "against KL, with the exact optimum's frontier",
    "rlhf_ppo.png": "PPO during training: reward-model score, true score, KL, entropy, "
                    "clipping, value loss, KL coefficient",
    "rlhf_reward_model.png": "reward model (step 2): pairwise accuracy on labeler rankings, "
                             "ranking loss",
    "rlhf_overoptimization.png": "over-optimization: the reward model's score keeps rising "
                                 "while the true reward turns",
}

FIGURE_FILES = ("results.json", "metrics.json")


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
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"
    return str(value).replace("|", "\\|")


def _pm(cell: dict[str, Any] | None, scale: float = 1.0, digits: int = 3) -> str:
    """'mean ± std' of a {"mean", "std"} cell (std left out when there is one value)."""
    if not cell or cell.get("mean") is None:
        return "-"
    mean = cell["mean"] * scale
    std = (cell.get("std") or 0.0) * scale
    n = cell.get("n", 2)
    return f"{mean:.{digits}f}" if n == 1 or not std else f"{mean:.{digits}f} ± {std:.{digits}f}"


def load_figures(stage_dir: str) -> tuple[str | None, dict[str, Any] | None]:
    """(file name, contents) of a stage's JSON figures: results.json, else metrics.json."""
    for name in FIGURE_FILES:
        path = os.path.join(stage_dir, name)
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    return name, json.load(f)
            except (OSError, json.JSONDecodeError):
                return name, None
    return None, None


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


# --------------------------------------------------------------------------- targets
def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """A stage's targets as (name, measured value, met), whatever the stage's format."""
    raw = results.get("targets")
    items: list[tuple[str, dict[str, Any]]] = []
    if isinstance(raw, list):
        items = [(str(t.get("name") or t.get("target") or "target"), t) for t in raw
                 if isinstance(t, dict)]
    elif isinstance(raw, dict):
        items = [(str(k), t) for k, t in raw.items() if isinstance(t, dict)]
    out = []
    for name, t in items:
        value = t.get("value")
        if isinstance(value, float):
            shown = f"{value:.3f}"
        elif isinstance(value, list):
            shown = ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in value)
        elif isinstance(value, dict):
            shown = ", ".join(f"{k}: {v:+.3f}" if isinstance(v, float) else f"{k}: {v}"
                              for k, v in value.items())
        else:
            shown = str(value)
        bound = t.get("target") if "name" in t else t.get("bound")
        if bound is not None and not isinstance(bound, str):
            bound = f"{bound}"
        if bound is not None:
            shown += f" (target {bound})"
        out.append((name, shown, bool(t.get("met"))))
    return out


# --------------------------------------------------------------------------- tables
def checks_tables(r: dict[str, Any]) -> list[str]:
    """Per group: passed/total and the largest error; then each module."""
    rows = []
    for key, label in (("kernels", "C kernels vs numpy references (float32, float64)"),
                       ("ops", "gradients of every registry op vs finite differences"),
                       ("modules", "gradients of whole modules vs finite differences")):
        checks = r.get(key) or []
        if not checks:
            rows.append([label, "not run", "-", "-"])
            continue
        passed = sum(bool(c["passed"]) for c in checks)
        worst = max(checks, key=lambda c: c["error"])
        rows.append([label, f"{passed}/{len(checks)}", f"{worst['error']:.1e}",
                     f"`{worst['name']}`"])
    out = [md_table(["check", "passed", "max error", "where"], rows, "lrrl")]
    mods = r.get("modules") or []
    if mods:
        out.append(md_table(["module (float64, inputs and all parameters)", "elements",
                             "error", "result"],
                            [[m["name"], m["size"], f"{m['error']:.1e}",
                              "ok" if m["passed"] else "FAILED"] for m in mods], "lrrl"))
    failed = [c for k in ("kernels", "ops", "modules") for c in r.get(k) or []
              if not c["passed"]]
    if failed:
        out.append("Failed: " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed))
    return out


def layerwise_tables(r: dict[str, Any]) -> list[str]:
    """Test accuracy (%) per activation and arm against labelled examples per class."""
    from .plotting import STYLE

    cfg = r.get("config", {})
    ks = [str(k if k is not None else "all") for k in cfg.get("labels_per_class", [])]
    all_n = r.get("labelled_all_per_class")
    head = ["activation", "arm"] + [f"all (~{all_n:.0f})/class" if k == "all" and all_n
                                    else f"{k}/class" for k in ks]
    rows = []
    for act, methods in r["summary"].items():
        for method, cells in methods.items():
            label = STYLE.get(method, ("", "", method))[2]
            if method == "none_long":
                label = f"random init, {cfg.get('long_factor', '?')}x steps"
            rows.append([act, label] + [_pm(cells.get(k), digits=1) for k in ks])
    n_seeds = len(cfg.get("seeds", [])) or "?"
    return [f"Test accuracy (%), mean ± std over {n_seeds} seed(s); {r.get('data', '')}; "
            f"network {r.get('network', '?')}.",
            md_table(head, rows, "ll" + "r" * len(ks))]


def lm_tables(r: dict[str, Any]) -> list[str]:
    """Validation bits per character of the GPT and the baselines; the curve."""
    b = r.get("baselines", {})
    rows = [["unigram (add-one)", b.get("unigram")], ["bigram (smoothed)", b.get("bigram")],
            [f"GPT, {r.get('steps', '?')} steps", r.get("val_bpc")]]
    d, c = r.get("data", {}), r.get("config", {})
    out = [f"Corpus: {d.get('train_docs', '?')} training / {d.get('val_docs', '?')} validation "
           f"documents ({d.get('train_chars', 0):,} / {d.get('val_chars', 0):,} characters), "
           f"{d.get('tokenizer', '?')} tokenizer with {d.get('vocab_size', '?')} tokens; GPT "
           f"d_model {c.get('d_model', '?')}, {c.get('n_layers', '?')} layers, context "
           f"{c.get('context', '?')}, batches of {c.get('batch_size', '?')}.",
           md_table(["model", "validation bits/char"], rows)]
    evals = r.get("evals") or []
    if evals:
        out.append(md_table(["step"] + [str(e["step"]) for e in evals],
                            [["validation bits/char"] + [e["val_bpc"] for e in evals]]))
    return out


def authors_tables(r: dict[str, Any]) -> list[str]:
    """Test accuracy per method against k labelled passages per author."""
    try:
        from .train.finetune import METHOD_LABELS
    except ImportError:  # pragma: no cover - the module is optional here
        METHOD_LABELS = {}
    ks = [str(k) for k in r.get("ks", [])]
    summary = r["summary"]
    rows = [[METHOD_LABELS.get(m, m)] + [_pm(summary[m].get(k)) for k in ks]
            for m in r.get("methods", summary) if m in summary]
    task = r.get("task", {})
    out = []
    lm = r.get("lm") or {}
    if lm.get("val_bpc") is not None:
        b = lm.get("baselines", {})
        out.append(f"Pretraining: {lm.get('steps', '?')} steps, validation "
                   f"{lm['val_bpc']:.3f} bits/char (unigram {b.get('unigram', float('nan')):.3f}"
                   f", bigram {b.get('bigram', float('nan')):.3f}).")
    out.append(f"Test accuracy, mean ± std over {len(r.get('seeds', [])) or '?'} seed(s); "
               f"{len(task.get('labels', [])) or '?'} labels (chance "
               f"{1 / max(len(task.get('labels', [])), 1):.3f}), {task.get('test', '?')} test "
               f"passages. {r.get('description', '')}")
    out.append(md_table(["method"] + [f"k={k}" for k in ks], rows))
    return out


def icl_tables(r: dict[str, Any]) -> list[str]:
    """Accuracy against the number of prior pairs (shots), per condition."""
    conds = r["conditions"]
    shots = sorted({row["shots"] for c in conds.values() for row in c["rows"]})
    by = {name: {row["shots"]: row for row in c["rows"]} for name, c in conds.items()}
    rows = []
    for s in shots:
        row: list[Any] = [s]
        for name in conds:
            cell = by[name].get(s, {})
            row.append(cell.get("accuracy"))
        first = next(iter(conds.values()))["rows"]
        shown = next((x.get("shown_fraction") for x in first if x["shots"] == s), None)
        rows.append(row + [shown])
    chance = next(iter(conds.values())).get("chance")
    steps = ", ".join(f"{name} {c.get('steps', '?')} steps" for name, c in conds.items())
    return [f"Accuracy on held-out mappings with frozen weights (chance {chance}); training: "
            f"{steps}.",
            md_table(["prior pairs (shots)"] + [f"{n}" for n in conds] + ["query key shown"],
                     rows)]


def rlhf_tables(r: dict[str, Any]) -> list[str]:
    """Per method, exact on held-out prompts: win rate vs SFT, KL, rewards, entropy."""
    rows = [[name, m.get("win"), m.get("kl"), m.get("rm"), m.get("true"), m.get("entropy")]
            for name, m in r["methods"].items()]
    extra = []
    for key, label in (("rm_heldout_accuracy", "reward model held-out accuracy"),
                       ("noise_ceiling", "labeler noise ceiling"),
                       ("ppo_objective", "PPO objective E[r] - beta KL"),
                       ("optimal_objective", "exact optimum of the objective")):
        if isinstance(r.get(key), (int, float)):
            extra.append(f"{label} {r[key]:.3f}")
    out = ["Exact evaluation on held-out prompts (the response space is enumerated).",
           md_table(["method", "win vs SFT", "KL to SFT (nats)", "E[reward model]",
                     "E[true reward]", "entropy"], rows)]
    if extra:
        out.append("; ".join(extra) + ".")
    return out


def generic_tables(r: dict[str, Any]) -> list[str]:
    """Fallback: the top-level numbers of results.json (one level into dicts)."""
    rows: list[list[Any]] = []
    for k, v in r.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            rows.append([k, float(v)])
        elif isinstance(v, dict):
            rows.extend([f"{k}.{k2}", float(v2)] for k2, v2 in v.items()
                        if isinstance(v2, (int, float)) and not isinstance(v2, bool))
    return [md_table(["figure", "value"], rows[:40])] if rows else []


TABLES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "checks": checks_tables, "layerwise": layerwise_tables, "lm": lm_tables,
    "authors": authors_tables, "icl": icl_tables, "rlhf": rlhf_tables,
}


_NUMBER_ROW = re.compile(r"^\|.*\|\s*[-+]?\d+(\.\d+)?(e[-+]?\d+)?( ± [\d.]+)?\s*\|", re.M)


def tables(stage: str, results: dict[str, Any]) -> list[str]:
    """The stage's Markdown tables; the generic table if its results have another shape
    (the stage's builder fails, or builds no table row with a number)."""
    try:
        blocks = TABLES[stage](results)
    except Exception:  # noqa: BLE001 - a stage's format changed: still report its numbers
        return generic_tables(results)
    if not any(_NUMBER_ROW.search(b) for b in blocks):
        return generic_tables(results)
    return blocks


# --------------------------------------------------------------------------- headlines
def headline(stage: str, r: dict[str, Any] | None) -> str:
    """One line with the stage's key figure (empty when it cannot be read)."""
    if not r:
        return ""
    try:
        return _HEADLINES[stage](r)
    except Exception:  # noqa: BLE001 - a headline is a nicety, never an error
        return ""


def _h_checks(r: dict[str, Any]) -> str:
    all_checks = [c for k in ("kernels", "ops", "modules") for c in r.get(k) or []]
    passed = sum(bool(c["passed"]) for c in all_checks)
    grads = [c["error"] for k in ("ops", "modules") for c in r.get(k) or []]
    return (f"{passed}/{len(all_checks)} checks passed, largest gradient error "
            f"{max(grads):.1e}")


def _h_layerwise(r: dict[str, Any]) -> str:
    act, methods = next(iter(r["summary"].items()))
    k = next(iter(methods["none"]))
    parts = [f"{m} {methods[m][k]['mean']:.1f}%" for m in ("autoencoder", "supervised", "none")
             if m in methods and k in methods[m]]
    return f"{act}, {k} labels/class: " + ", ".join(parts).replace(
        "none ", "random init ")


def _h_lm(r: dict[str, Any]) -> str:
    b = r["baselines"]
    return (f"validation {r['val_bpc']:.2f} bits/char after {r['steps']} steps (bigram "
            f"{b['bigram']:.2f}, unigram {b['unigram']:.2f})")


def _h_authors(r: dict[str, Any]) -> str:
    ks = [str(k) for k in r["ks"]]
    k = "2" if "2" in ks else ks[0]
    s = r["summary"]
    names = {"finetune": "fine-tuned", "scratch": "scratch", "probe": "probe", "bow": "BoW"}
    return f"k={k}: " + ", ".join(f"{names.get(m, m)} {s[m][k]['mean']:.2f}"
                                  for m in ("finetune", "scratch", "probe", "bow") if m in s)


def _h_icl(r: dict[str, Any]) -> str:
    parts = []
    for name, c in r["conditions"].items():
        rows = c["rows"]
        parts.append(f"{name} {rows[0]['accuracy']:.2f} at {rows[0]['shots']} shots -> "
                     f"{rows[-1]['accuracy']:.2f} at {rows[-1]['shots']}")
    return "; ".join(parts)


def _h_rlhf(r: dict[str, Any]) -> str:
    m = r["methods"]
    ppo = m.get("PPO (steps 2+3)") or next(v for k, v in m.items() if k.startswith("PPO"))
    return (f"PPO: true reward {ppo['true']:.2f} (SFT {m['SFT (step 1)']['true']:.2f}), win "
            f"{ppo['win']:.2f} vs SFT at KL {ppo['kl']:.2f}")


_HEADLINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "checks": _h_checks, "layerwise": _h_layerwise, "lm": _h_lm, "authors": _h_authors,
    "icl": _h_icl, "rlhf": _h_rlhf,
}


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
    fig_name, results = load_figures(stage_dir)
    if results:
        for block in tables(name, results):
            out += [block, ""]
        tg = targets(results)
        if tg:
            out += ["The stage's own targets (set for its full-size run; smaller sizes "
                    "may miss them):", ""]
            out += [f"- {'met' if met else '**not met**'}: {n}: {v}" for n, v, met in tg]
            out += [""]
    elif status == "ok":
        out += ["(no results.json found)", ""]
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
    if fig_name:
        files.append(f"figures [{rel}/{fig_name}]({rel}/{fig_name})")
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
              "record (stages, commands, times) is [results.json](results.json).", ""]
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
