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

#: colour, marker and line style of each arm, so that every plot reads the same way
STYLE = {
    "random": ("#7f7f7f", "o", "-"),
    "random_long": ("#bcbd22", "v", "--"),
    "supervised": ("#1f77b4", "s", "-"),
    "autoencoder": ("#d62728", "D", "-"),
    "logreg": ("#2ca02c", "^", ":"),
    "nn1": ("#9467bd", "x", ":"),
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
    """Test accuracy (mean over seeds, error bars the 95% t interval) against labelled
    examples per class, one panel per activation, one line per arm (the main depth), from a
    layerwise results.json; written to `path` as PNG. Returns False (after printing how to
    install matplotlib) when it is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(INSTALL_HINT + "; skipping the plot", file=sys.stderr)
        return False
    from .experiments.layerwise import LABELS
    from .experiments.protocol import mean_interval

    cfg, metrics = results["config"], results["metrics"]
    ks = [str(k) for k in cfg["labels_per_class"]]
    all_x = float(metrics.get("labelled_all_per_class", 100.0))
    xs = {k: (all_x if k == "all" else float(k)) for k in ks}
    acts = list(cfg["activations"])
    fig, axes = plt.subplots(1, len(acts), figsize=(5.6 * len(acts), 4.4), sharey=True,
                             squeeze=False)
    for ax, act in zip(axes[0], acts):
        for method in STYLE:
            pts = []
            for k in ks:
                vals = [100 * r["test_acc"] for r in metrics["runs"]
                        if r["activation"] == act and r["method"] == method
                        and r["labels_per_class"] == k and r["depth"] in (0, cfg["depth"])]
                if vals:
                    iv = mean_interval(vals)
                    half = 0.0 if iv.n < 2 else iv.hi - iv.mean
                    pts.append((xs[k], iv.mean, half))
            if not pts:
                continue
            color, marker, line = STYLE[method]
            x, y, e = zip(*pts)
            ax.errorbar(x, y, yerr=e, color=color, marker=marker, capsize=3,
                        label=LABELS[method], linestyle=line)
        ax.set_xscale("log")
        ax.set_xticks([xs[k] for k in ks])
        ax.set_xticklabels([f"all\n(~{all_x:.0f})" if k == "all" else k for k in ks])
        ax.minorticks_off()
        ax.set_title(f"{act} + {'default' if act == 'sigmoid' else 'Glorot'} init")
        ax.set_xlabel("labelled examples per class")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.suptitle(title or f"layer-wise pretraining: {metrics.get('network', '')} MLP, "
                 f"{metrics.get('data', '').split(':')[0]}\nmean and 95% interval over "
                 f"{len(cfg['seeds'])} seed(s)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
