"""The language-model pretraining experiment: a GPT on a corpus split by document, measured
in validation bits per character beside unigram and bigram baselines.

    config = LMExperimentConfig(corpus="pydoc", lm=LMConfig(steps=600))
    results = run_lm(config, "runs/lm/pydoc")      # results.json in the shared schema

Protocol: documents go whole to train or validation; nothing is chosen on validation (no
early stopping, the model of the last step is reported); one training seed, so the target's
interval is over the validation documents (paired: the GPT and the bigram score the same
characters of each), not over seeds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import distributed as dist
from ..train.lm import (
    LM_OUTPUTS,
    LMConfig,
    LMData,
    document_bits,
    ngram_document_bits,
    prepare_lm_data,
    run_config,
    train_lm,
)
from .protocol import Protocol, paired_interval, prepare_run_dir, target, write_results

TOKENIZERS = ("char", "bpe")


@dataclass(frozen=True)
class LMExperimentConfig:
    """The corpus, its tokenizer and split, and the model and optimization (LMConfig)."""

    corpus: str = "pydoc"
    tokenizer: str = "char"
    vocab_size: int = 512
    val_fraction: float = 0.1
    lm: LMConfig = field(default_factory=LMConfig)

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        if self.tokenizer == "bpe" and self.vocab_size < 257:
            raise ValueError(f"vocab_size must be at least 257 for BPE, got {self.vocab_size}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare_data(config: LMExperimentConfig) -> LMData:
    """The corpus loaded, split by document and tokenized (tokenizer from train only)."""
    from ..text.corpora import CorpusError, load_corpus

    docs = load_corpus(config.corpus)
    data = prepare_lm_data(docs, config.tokenizer, config.vocab_size, config.val_fraction,
                           config.lm.seed)
    if len(data.train_ids) <= config.lm.context + 1:
        raise CorpusError(f"the training documents hold {len(data.train_ids)} tokens, fewer "
                          f"than the context + 1 ({config.lm.context + 1})")
    return data


def run_lm(config: LMExperimentConfig, out_dir: str, data: LMData | None = None,
           resume: bool = True, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Pretrain (resuming an interrupted run in out_dir made with the same settings; a run
    with other settings there is a RunMismatch unless resume is False), then write
    out_dir/results.json. Returns the results as written, with the model under "model"."""
    data = data if data is not None else prepare_data(config)
    cfg = config.lm
    saved, outputs = run_config(cfg, data), (*LM_OUTPUTS, "results.json", "lm_curve.png")

    def prepare() -> bool:
        resumed = prepare_run_dir(out_dir, saved, resume=resume, outputs=outputs)
        if resumed and not os.path.exists(os.path.join(out_dir, LM_OUTPUTS[0])):
            resumed = prepare_run_dir(out_dir, saved, resume=False, outputs=outputs)
        return resumed

    resumed = dist.on_rank_zero(prepare)  # under mpiexec rank 0 alone checks the folder
    if resumed:
        say(f"resuming the run in {out_dir}")
    res = train_lm(data, cfg, out_dir, resume=resumed, name="lm")
    model = res.pop("model")
    d, b = data.describe(), res["baselines"]
    protocol = Protocol(
        splits={"train documents": d["train_docs"], "validation documents": d["val_docs"]},
        seeds=[cfg.seed], tuned={},
        notes="Documents go whole to train or validation; the tokenizer is trained on the "
              "training documents; the model of the last step is reported (no choice is made "
              "on validation); one training seed: the target is the mean over validation "
              "documents of each one's bits/char, GPT minus bigram, with a paired t "
              "interval over the documents (the uncertainty of the validation sample, not "
              "of the seed).")
    chars = np.array([len(doc.text) + 1 for doc in data.val_docs], dtype=np.float64)
    per_doc = paired_interval(
        document_bits(model, data.val_ids, data.tokenizer.eot_id) / chars,
        ngram_document_bits(data.train_docs, data.val_docs)["bigram"] / chars)
    targets = [target(f"GPT - bigram, bits/char per validation document (mean over "
                      f"{len(chars)}; lower is better)", per_doc, 0.0, higher_is_better=False)]
    tables = {"bpc": {
        "caption": f"validation bits per character; corpus {config.corpus}: "
                   f"{d['train_docs']} / {d['val_docs']} documents ({d['train_chars']:,} / "
                   f"{d['val_chars']:,} characters), {d['tokenizer']} tokenizer with "
                   f"{d['vocab_size']} tokens; GPT d_model {cfg.d_model}, {cfg.n_layers} "
                   f"layers, context {cfg.context}",
        "columns": ["model", "validation bits/char"],
        "rows": [["unigram (add-one)", b["unigram"]], ["bigram (smoothed)", b["bigram"]],
                 [f"GPT, {res['steps']} steps", res["val_bpc"]]]}}
    if res.get("evals"):
        tables["curve"] = {"caption": "validation bits per character during training",
                           "columns": ["step", "validation bits/char"],
                           "rows": [[e["step"], e["val_bpc"]] for e in res["evals"]]}
    metrics = {**{k: res[k] for k in ("val_bpc", "train_bpc", "baselines", "steps", "evals",
                                      "train_curve", "resumed_from", "seconds")},
               "data": d}
    if dist.get_rank() == 0:
        write_results(out_dir, "lm", config.to_dict(), protocol, metrics, targets, tables)
    return {"config": config.to_dict(), "metrics": metrics, "tables": tables,
            "targets": targets, "model": model, "path": os.path.join(out_dir, "results.json")}


def format_summary(results: dict[str, Any]) -> str:
    """The bits-per-character table and the curve, as text."""
    m = results["metrics"]
    b = m["baselines"]
    lines = ["", "validation bits per character", f"{'model':<22}{'bpc':>8}",
             f"{'unigram (add-one)':<22}{b['unigram']:>8.3f}",
             f"{'bigram (smoothed)':<22}{b['bigram']:>8.3f}",
             f"{'GPT, ' + str(m['steps']) + ' steps':<22}{m['val_bpc']:>8.3f}"]
    if m.get("evals"):
        lines.append("\nduring training: " + ", ".join(
            f"step {e['step']}: {e['val_bpc']:.3f}" for e in m["evals"]))
    eval_tokens = results["config"]["lm"]["eval_tokens"]
    note = "" if not eval_tokens else (f"; evaluations before the last on the first "
                                       f"{eval_tokens} validation tokens only")
    lines.append(f"({m['seconds']:.0f} s{note})")
    return "\n".join(lines)
