"""Plots of an RLHF run, from its results.json metrics (matplotlib is optional: without it,
plot_all returns [])."""

from __future__ import annotations

import math
import os
from typing import Any


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_all(metrics: dict[str, Any], out_dir: str) -> list[str]:
    """Write every figure into out_dir; returns the file names written."""
    plt = _pyplot()
    if plt is None:
        return []
    written = []
    for name, fn in (
        ("rlhf_frontier.png", frontier),
        ("rlhf_overoptimization.png", overoptimization),
    ):
        fig = fn(plt, metrics)
        fig.savefig(os.path.join(out_dir, name), dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(name)
    return written


def _points(metrics: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """The frontier points whose name starts with prefix (or is it, for one ending in $)."""
    if prefix.endswith("$"):
        return [p for name, p in metrics["frontier"]["points"].items() if name == prefix[:-1]]
    return [p for name, p in metrics["frontier"]["points"].items() if name.startswith(prefix)]


def _errorbar(ax: Any, pts: list[dict[str, Any]], key: str, **style: Any) -> None:
    """Seed means with their 95% intervals on both axes."""
    if not pts:
        return
    x = [p["kl"]["mean"] for p in pts]
    y = [p[key]["mean"] for p in pts]
    xerr = [
        [p["kl"]["mean"] - p["kl"]["ci95"][0] for p in pts],
        [p["kl"]["ci95"][1] - p["kl"]["mean"] for p in pts],
    ]
    yerr = [
        [p[key]["mean"] - p[key]["ci95"][0] for p in pts],
        [p[key]["ci95"][1] - p[key]["mean"] for p in pts],
    ]
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, capsize=2, lw=1, **style)


def frontier(plt: Any, m: dict[str, Any]) -> Any:
    """True reward and win rate against KL(policy || SFT): PPO over KL targets, DPO over
    beta, best-of-n over n, SFT on the top-ranked responses, and the exact optimum's curves
    (for the true reward: the best any policy can do; for the reward model: what PPO and
    best-of-n chase)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    curves = m["frontier"]["optimum"]
    for ax, key, label in (
        (axes[0], "true", "E[true reward r*]"),
        (axes[1], "win", "true-reward win rate vs SFT"),
    ):
        for reward, style in (("true reward", "k-"), ("reward model", "k:")):
            pts = [p for p in curves[reward] if p["kl"] <= 12]
            ax.plot(
                [p["kl"] for p in pts],
                [p[key] for p in pts],
                style,
                lw=1.5,
                label=f"exact optimum of the {reward}",
            )
        _errorbar(ax, _points(m, "PPO"), key, fmt="o-", color="C2", label="PPO (KL targets)")
        _errorbar(ax, _points(m, "DPO"), key, fmt="s-", color="C4", label="DPO (beta)")
        _errorbar(
            ax,
            _points(m, "best-of-"),
            key,
            fmt="^-",
            color="C1",
            label="best-of-n with the reward model",
        )
        _errorbar(ax, _points(m, "SFT on top"), key, fmt="D", color="C5", label="SFT on top-ranked")
        _errorbar(ax, _points(m, "SFT$"), key, fmt="*", color="C0", ms=10, label="SFT")
        if key == "win":
            ax.axhline(0.65, color="C3", lw=0.8, ls="--", label="target 0.65")
            ax.axvline(6.0, color="C3", lw=0.8, ls=":", label="KL 6")
        ax.set_xlabel("KL(pi || pi_SFT), nats (exact, test symbol sets)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    n = len(m["seeds"])
    fig.suptitle(f"reward against KL, mean and 95% interval over {n} seeds")
    return fig


def overoptimization(plt: Any, m: dict[str, Any]) -> Any:
    """Gao et al.'s picture: best-of-n's true reward (solid) and proxy reward (dashed,
    right axis) against sqrt(KL), for reward models trained on more or fewer rankings."""
    fig, ax = plt.subplots(figsize=(8, 5))
    ax2 = ax.twinx()
    sizes = sorted(m["overoptimization"], key=int)
    for i, size in enumerate(sizes):
        curve = m["overoptimization"][size]["curve"]
        d = [math.sqrt(max(p["kl"], 0.0)) for p in curve]
        ax.plot(
            d,
            [p["true"] for p in curve],
            "o-",
            color=f"C{i}",
            ms=3,
            label=f"true reward, RM from {size} rankings",
        )
        ax2.plot(
            d,
            [p["rm"] for p in curve],
            "--",
            color=f"C{i}",
            lw=1,
            label=f"proxy (its own RM), {size}",
        )
    ax.set_xlabel(
        "sqrt(KL(best-of-n || pi_SFT)) (exact, n = 1 .. "
        f"{m['overoptimization'][sizes[0]]['curve'][-1]['n']})"
    )
    ax.set_ylabel("E[true reward r*] (solid)")
    ax2.set_ylabel("E[proxy reward] (dashed, normalized on SFT samples)")
    ax.grid(alpha=0.3)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="lower right")
    ax.set_title(f"over-optimization, means over {len(m['seeds'])} seeds")
    return fig
