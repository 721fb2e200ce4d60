"""Plots of experiment results, with matplotlib as an optional dependency.

Without matplotlib the functions print how to get it (`pip install 'tinytape[plot]'`) and
return False; everything else (tables, JSON) works without it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

INSTALL_HINT = "plots need matplotlib: pip install 'tinytape[plot]' (or pip install matplotlib)"

#: colour and marker of each method, so that every plot reads the same way
STYLE = {
    "none": ("#7f7f7f", "o", "random init"),
    "none_long": ("#bcbd22", "v", "random init, long budget"),
    "supervised": ("#1f77b4", "s", "supervised pretraining"),
    "autoencoder": ("#d62728", "D", "autoencoder pretraining"),
}


def have_matplotlib() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_layerwise(results: Mapping[str, Any], path: str | os.PathLike,
                   title: str | None = None) -> bool:
    """Test accuracy (mean, error bars one std over seeds) against labelled examples per
    class, one panel per activation, one line per method; written to `path` as PNG.
    Returns False (after printing how to install matplotlib) when it is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(INSTALL_HINT + "; skipping the plot", file=sys.stderr)
        return False
    summary = results["summary"]
    cfg = results.get("config", {})
    ks = [str(k) for k in cfg.get("labels_per_class", [])]
    all_x = float(results.get("labelled_all_per_class", 100.0))
    xs = {k: (all_x if k == "all" else float(k)) for k in ks}
    acts = [a for a in cfg.get("activations", summary.keys()) if a in summary]
    fig, axes = plt.subplots(1, max(len(acts), 1), figsize=(5.2 * max(len(acts), 1), 4.2),
                             sharey=True, squeeze=False)
    for ax, act in zip(axes[0], acts):
        for method, cells in summary[act].items():
            color, marker, label = STYLE.get(method, ("k", "x", method))
            if method == "none_long":
                label = f"random init, {cfg.get('long_factor', '?')}x steps"
            pts = [(xs[k], cells[k]["mean"], cells[k]["std"]) for k in ks if k in cells]
            if not pts:
                continue
            x, y, e = zip(*pts)
            ax.errorbar(x, y, yerr=e, color=color, marker=marker, capsize=3, label=label,
                        linestyle="--" if method == "none_long" else "-")
        ax.set_xscale("log")
        ax.set_xticks([xs[k] for k in ks])
        ax.set_xticklabels([f"all\n(~{all_x:.0f})" if k == "all" else k for k in ks])
        ax.minorticks_off()
        init = "default init" if act == "sigmoid" else "Glorot init"
        ax.set_title(f"{act} + {init}")
        ax.set_xlabel("labelled examples per class")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    network = results.get("network") or "-".join(str(h) for h in cfg.get("hidden", []))
    fig.suptitle(title or f"greedy layer-wise pretraining, then fine-tuning: {network} MLP, "
                 f"{results.get('data', '').split(':')[0]}, mean ± std over "
                 f"{len(cfg.get('seeds', []))} seed(s)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
