"""Plots of an RLHF run (matplotlib is optional: without it, plot_all returns [])."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_all(results: dict[str, Any], out_dir: str) -> list[str]:
    """Write every figure into out_dir; returns the file names written."""
    plt = _pyplot()
    if plt is None:
        return []
    written = []
    for name, fn in (("rlhf_methods.png", _methods), ("rlhf_ppo.png", _ppo),
                     ("rlhf_reward_model.png", _reward_model),
                     ("rlhf_overoptimization.png", _overopt)):
        fig = fn(plt, results)
        fig.savefig(os.path.join(out_dir, name), dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(name)
    return written


def _methods(plt: Any, r: dict[str, Any]) -> Any:
    """Win rate and KL per method; E[r_RM] and E[r*] against KL (exact frontier, training
    trajectories, final points)."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    methods = r["methods"]
    names = list(methods)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    short = [n.replace(" (steps 2+3)", "").replace("exact optimum", "optimum")
             .replace(", ", "\n") for n in names]
    ax = axes[0, 0]
    ax.bar(range(len(names)), [methods[n]["win"] for n in names], color=colors[:len(names)])
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.axhline(0.65, color="C3", lw=0.8, ls="--", label="PPO target 0.65")
    ax.axhline(0.60, color="C4", lw=0.8, ls="--", label="DPO target 0.60")
    ax.set_xticks(range(len(names)), short, fontsize=7)
    ax.set_ylabel("true-reward win rate vs SFT (ties split)")
    ax.set_title("win rate against the supervised policy (exact)")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.bar(range(len(names)), [methods[n]["kl"] for n in names], color=colors[:len(names)])
    ax.axhline(6.0, color="C3", lw=0.8, ls="--", label="PPO limit 6 nats")
    target = r["config"]["ppo"]["target_kl"]
    if target:
        ax.axhline(target, color="gray", lw=0.8, ls=":", label=f"KL target {target}")
    ax.set_xticks(range(len(names)), short, fontsize=7)
    ax.set_ylabel("KL(pi || pi_SFT), nats")
    ax.set_title("KL to the supervised policy (exact)")
    ax.legend(fontsize=8)
    front = r["frontier"]
    ppo_ev = r["logs"]["ppo"]["evals"]
    dpo_ev = r["logs"]["dpo"]["evals"]
    over_ev = r["logs"]["overopt"]["evals"]
    for ax, key, label in ((axes[1, 0], "rm", "E[reward model] (normalized)"),
                           (axes[1, 1], "true", "E[true reward r*]")):
        ax.plot([f["kl"] for f in front], [f[key] for f in front], "k-", lw=1.5,
                label="exact optimum pi_SFT exp(r/beta) (beta sweep)")
        ax.plot([0] + [e["kl"] for e in ppo_ev],
                [methods["SFT (step 1)"][key]] + [e[key] for e in ppo_ev],
                "o-", color="C2", ms=3, label="PPO (during training)")
        ax.plot([0] + [e["kl"] for e in dpo_ev],
                [methods["SFT (step 1)"][key]] + [e[key] for e in dpo_ev],
                "s-", color="C4", ms=3, label="DPO (during training)")
        if key == "true":
            ax.plot([f["kl"] for f in r["small_rm_frontier"]],
                    [f["true"] for f in r["small_rm_frontier"]], "k:", lw=1,
                    label="exact optimum of the small RM")
            ax.plot([0] + [e["kl"] for e in over_ev],
                    [methods["SFT (step 1)"]["true"]] + [e["true"] for e in over_ev],
                    "^-", color="C5", ms=3, label="PPO, no KL, small RM")
        ax.set_xlabel("KL(pi || pi_SFT), nats (exact, held-out prompts)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[1, 0].set_title("reward model score vs KL")
    axes[1, 1].set_title("true reward vs KL")
    fig.tight_layout()
    return fig


def _ppo(plt: Any, r: dict[str, Any]) -> Any:
    """The per-iteration PPO logs."""
    lg = r["logs"]["ppo"]
    it = np.arange(1, len(lg["kl"]) + 1)
    fig, axes = plt.subplots(2, 4, figsize=(15, 6.5))
    target = r["config"]["ppo"]["target_kl"]
    panels = [("rm_score", "reward-model score (rollouts)"), ("true_score", "true score r*"),
              ("kl", "KL (k1, summed per response)"), ("entropy", "entropy (per response)"),
              ("clipfrac", "clip fraction"), ("value_loss", "value loss"),
              ("beta", "KL coefficient beta"), ("approx_kl", "approx KL(old || new)")]
    for ax, (key, title) in zip(axes.ravel(), panels):
        ax.plot(it, lg[key], lw=1)
        if key == "kl":
            ax.plot(it, lg["kl_k3"], lw=1, alpha=0.7, label="k3")
            if target:
                ax.axhspan(0.8 * target, 1.2 * target, color="C2", alpha=0.15,
                           label="target +-20%")
                ax.axhline(target, color="C2", lw=0.8)
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("PPO iteration", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _reward_model(plt: Any, r: dict[str, Any]) -> Any:
    """Reward-model accuracy per epoch against the labelers' noise ceiling."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    lg = r["logs"]["rm"]
    ep = np.arange(1, len(lg["train_acc"]) + 1)
    ax = axes[0]
    ax.plot(ep, lg["train_acc"], "o-", ms=3, label="train pairs")
    ax.plot(ep, lg["heldout_acc"], "s-", ms=3, label="held-out pairs")
    ax.axhline(r["noise_ceiling"], color="k", ls="--", lw=1, label="noise ceiling (r* itself)")
    ax.axhline(0.9 * r["noise_ceiling"], color="C3", ls=":", lw=1, label="0.9 x ceiling")
    ax.set_xlabel("epoch")
    ax.set_ylabel("pairwise accuracy on labeler rankings")
    ax.set_title("reward model (step 2)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    ax.plot(lg["losses"], lw=0.6)
    ax.set_xlabel("step")
    ax.set_ylabel("ranking loss")
    ax.set_title("-1/C(K,2) sum log sigmoid(r_w - r_l)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _overopt(plt: Any, r: dict[str, Any]) -> Any:
    """PPO without a KL penalty against a reward model from few comparisons."""
    lg = r["logs"]["overopt"]
    it = np.arange(1, len(lg["rm_score"]) + 1)
    ev = lg["evals"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    ax.plot(it, lg["rm_score"], color="C0", lw=1, label="small RM score (rollouts)")
    ax.plot([e["iteration"] for e in ev], [e["rm"] for e in ev], "o", color="C0", ms=4,
            label="small RM score (exact, held-out)")
    ax2 = ax.twinx()
    ax2.plot(it, lg["true_score"], color="C3", lw=1, label="true reward (rollouts)")
    ax2.plot([e["iteration"] for e in ev], [e["true"] for e in ev], "s", color="C3", ms=4,
             label="true reward (exact, held-out)")
    ax.set_xlabel("PPO iteration (no KL penalty)")
    ax.set_ylabel("reward-model score", color="C0")
    ax2.set_ylabel("true reward r*", color="C3")
    ax.set_title("over-optimization: the proxy keeps rising, the true reward turns")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="center right")
    ax = axes[1]
    sft_true = r["methods"]["SFT (step 1)"]["true"]
    ax.plot([0.0] + [e["kl"] for e in ev], [sft_true] + [e["true"] for e in ev], "s-",
            color="C3", ms=4, label="PPO, no KL, small RM (from SFT at KL 0)")
    ax.plot([f["kl"] for f in r["small_rm_frontier"]],
            [f["true"] for f in r["small_rm_frontier"]], "k:", label="exact optimum of small RM")
    ax.plot([f["kl"] for f in r["frontier"]], [f["true"] for f in r["frontier"]], "k-",
            label="exact optimum of the full RM")
    ax.set_xlabel("KL(pi || pi_SFT), nats")
    ax.set_ylabel("E[true reward]")
    ax.set_title("true reward vs KL")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
