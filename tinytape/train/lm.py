"""Language-model pretraining: a GPT on a corpus of documents, measured in bits per character.

    data = prepare_lm_data(load_corpus("pydoc"), tokenizer="char", val_fraction=0.1, seed=0)
    result = train_lm(data, LMConfig(steps=1500), out_dir="runs/lm")
    print(result["val_bpc"], result["baselines"])

The stream of a split is ``EOT doc1 EOT doc2 EOT ... docN EOT`` (EOT = <|endoftext|>): the
model predicts every character of every document and the end of each, so bits per character
= total bits / (characters of the documents + one per document). The unigram and bigram
baselines (`ngram_bpc`) score exactly the same symbols, so the numbers are comparable, with
either tokenizer. Documents go to train or validation whole (`split_documents`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..checkpoint import load_checkpoint, save_checkpoint
from ..distributed import get_rank
from ..models import GPT, GPTConfig
from ..nn.module import evaluating
from ..numeric import log_softmax
from ..optim import Optimizer, WarmupCosineLR, make_optimizer, make_schedule
from ..text.corpora import Document, split_documents
from ..text.tokenizers import Tokenizer, load_tokenizer, train_tokenizer
from .trainer import MetricsLogger, Trainer, read_metrics

LN2 = math.log(2.0)
EOT_SYMBOL = "\x00<eot>"  # the end-of-document symbol of the n-gram baselines
UNK_SYMBOL = "\x00<unk>"


# ====================================================================== data
@dataclass
class LMData:
    """Token streams of the train and validation documents, and their tokenizer."""

    tokenizer: Tokenizer
    train_docs: list[Document]
    val_docs: list[Document]
    train_ids: np.ndarray
    val_ids: np.ndarray

    @property
    def val_chars(self) -> int:
        """Symbols scored on validation: the documents' characters and one end per document."""
        return count_chars(self.val_docs)

    def describe(self) -> dict[str, Any]:
        return {"train_docs": len(self.train_docs), "val_docs": len(self.val_docs),
                "train_chars": count_chars(self.train_docs), "val_chars": self.val_chars,
                "train_tokens": int(len(self.train_ids)), "val_tokens": int(len(self.val_ids)),
                "vocab_size": self.tokenizer.vocab_size, "tokenizer": self.tokenizer.kind}


def count_chars(docs: Sequence[Document]) -> int:
    return sum(len(d.text) for d in docs) + len(docs)


def encode_stream(docs: Sequence[Document], tok: Tokenizer) -> np.ndarray:
    """EOT doc1 EOT doc2 ... EOT as one int32 array."""
    out: list[int] = [tok.eot_id]
    for d in docs:
        out.extend(tok.encode(d.text))
        out.append(tok.eot_id)
    return np.asarray(out, dtype=np.int32)


def prepare_lm_data(docs: Sequence[Document], tokenizer: str | Tokenizer = "char",
                    vocab_size: int = 512, val_fraction: float = 0.1, seed: int = 0,
                    val_docs: Sequence[Document] | None = None) -> LMData:
    """Split docs by document (or use the given val_docs), train the tokenizer on the
    training documents only, and encode both streams."""
    if val_docs is None:
        train_docs, val_docs = split_documents(docs, val_fraction, seed)
    else:
        train_docs, val_docs = list(docs), list(val_docs)
    if isinstance(tokenizer, str):
        tok = train_tokenizer(tokenizer, [d.text for d in train_docs], vocab_size)
    else:
        tok = tokenizer
    return LMData(tok, train_docs, list(val_docs), encode_stream(train_docs, tok),
                  encode_stream(val_docs, tok))


# ====================================================================== baselines
def _symbols(text: str, known: set[str] | None) -> list[str]:
    syms = list(text) if known is None else [c if c in known else UNK_SYMBOL for c in text]
    return [*syms, EOT_SYMBOL]


def ngram_bpc(train_docs: Sequence[Document], val_docs: Sequence[Document]
              ) -> dict[str, float]:
    """Bits per character of a unigram and a bigram character model fitted on train_docs
    (`ngram_document_bits` summed over the documents, over count_chars(val_docs))."""
    n = count_chars(val_docs)
    return {name: float(bits.sum() / n)
            for name, bits in ngram_document_bits(train_docs, val_docs).items()}


def ngram_document_bits(train_docs: Sequence[Document], val_docs: Sequence[Document]
                        ) -> dict[str, np.ndarray]:
    """Bits of each validation document (its characters and its end; shape (len(val_docs),))
    under a unigram and a bigram character model fitted on train_docs.

    Symbols: the training characters, an end-of-document symbol and one "unknown" symbol for
    validation characters never seen in training; V of them. Every document ends with the
    end symbol, and its first character is predicted after the previous end (as in the LM
    stream). With n() counts over the training documents and N symbols in all:

        unigram  P(s)        = (n(s) + 1) / (N + V)                       (add-one)
        bigram   P(s | prev) = (n(prev, s) + V * P_uni(s)) / (n(prev) + V)

    (the bigram is smoothed towards the unigram, with the weight of V pseudo-counts).
    """
    known = set()
    for d in train_docs:
        known.update(d.text)
    alphabet = sorted(known) + [EOT_SYMBOL, UNK_SYMBOL]
    V = len(alphabet)
    uni: Counter[str] = Counter()
    bi: Counter[tuple[str, str]] = Counter()
    ctx: Counter[str] = Counter()
    for d in train_docs:
        prev = EOT_SYMBOL
        for s in _symbols(d.text, None):
            uni[s] += 1
            bi[(prev, s)] += 1
            ctx[prev] += 1
            prev = s
    n_total = sum(uni.values())

    def p_uni(s: str) -> float:
        return (uni[s] + 1.0) / (n_total + V)

    bits_uni, bits_bi = np.zeros(len(val_docs)), np.zeros(len(val_docs))
    for i, d in enumerate(val_docs):
        prev = EOT_SYMBOL
        for s in _symbols(d.text, known):
            pu = p_uni(s)
            bits_uni[i] -= math.log2(pu)
            bits_bi[i] -= math.log2((bi[(prev, s)] + V * pu) / (ctx[prev] + V))
            prev = s
    return {"unigram": bits_uni, "bigram": bits_bi}


# ====================================================================== evaluation
def token_nll(model: GPT, ids: np.ndarray, batch_size: int = 16, stride: int | None = None
              ) -> np.ndarray:
    """Negative log-likelihood (nats) of every token of ids after the first, each predicted
    once, from windows of the model's context that advance by `stride` (default half the
    context; the first window scores all its tokens, the others only those not yet scored,
    so every token but the first few sees at least context - stride earlier tokens)."""
    ids = np.asarray(ids, dtype=np.int64)
    T = model.config.context_length
    stride = max(1, T // 2) if stride is None else stride
    if not 1 <= stride <= T:
        raise ValueError(f"token_nll: stride must be in [1, {T}], got {stride}")
    n = len(ids)
    out = np.empty(max(n - 1, 0), dtype=np.float64)
    if n < 2:
        return out
    jobs: list[tuple[int, int, int]] = []  # (start, end, first scored target index)
    scored, st = 0, 0
    while scored < n - 1:
        end = min(st + T, n - 1)
        jobs.append((st, end, scored))
        scored = end
        st += stride
        if st + T > n - 1:
            st = max(0, n - 1 - T)
    with evaluating(model):
        full = [j for j in jobs if j[1] - j[0] == T]
        short = [j for j in jobs if j[1] - j[0] != T]
        groups = [full[i:i + batch_size] for i in range(0, len(full), batch_size)]
        groups += [[j] for j in short]
        for group in groups:
            x = np.stack([ids[s:e] for s, e, _ in group])
            y = np.stack([ids[s + 1:e + 1] for s, e, _ in group])
            logp = log_softmax(model(x)[0].numpy())
            nll = -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
            for row, (s, _e, first) in zip(nll, group):
                keep = first - s  # targets s+1+j for j >= keep are new
                out[first:s + len(row)] = row[keep:]
    return out


def bits_per_char(model: GPT, ids: np.ndarray, n_chars: int, batch_size: int = 16,
                  stride: int | None = None) -> float:
    """Total bits of the stream's tokens (after the first) divided by n_chars."""
    return float(token_nll(model, ids, batch_size, stride).sum() / LN2 / n_chars)


def document_bits(model: GPT, ids: np.ndarray, eot_id: int, batch_size: int = 16,
                  stride: int | None = None) -> np.ndarray:
    """Bits of each document of a stream EOT doc1 EOT ... docN EOT (its tokens and the EOT
    that ends it; shape (N,)), from `token_nll`: their sum over the characters is
    bits_per_char."""
    ids = np.asarray(ids)
    if len(ids) < 2 or ids[0] != eot_id or ids[-1] != eot_id:
        raise ValueError("document_bits: the stream must start and end with the EOT token")
    nll = token_nll(model, ids, batch_size, stride)
    # target t predicts ids[t + 1]; it belongs to the document of the EOTs before it
    doc = np.cumsum(ids[:-1] == eot_id) - 1
    return np.bincount(doc, weights=nll) / LN2


# ====================================================================== training
@dataclass
class LMConfig:
    """Model and optimisation settings of a pretraining run."""

    context: int = 128
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    dropout: float = 0.0
    steps: int = 1500
    batch_size: int = 16
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup: int = 100
    weight_decay: float = 0.1
    clip: float = 1.0
    eval_every: int = 250
    eval_tokens: int = 0  # validation tokens of the periodic evaluations (0: all; the
    #                       final one always uses them all)
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("context", "d_model", "n_layers", "n_heads", "steps", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)}")
        for key in ("warmup", "eval_every", "eval_tokens"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not (self.min_lr >= 0 and self.clip > 0 and self.weight_decay >= 0):
            raise ValueError(f"clip must be positive, min_lr and weight_decay >= 0, got "
                             f"{self.clip}, {self.min_lr}, {self.weight_decay}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads "
                             f"{self.n_heads}")

    def gpt_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, context_length=self.context,
                         d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
                         dropout=self.dropout)


def lm_batches(ids: np.ndarray, context: int):
    """sample(rng, batch_size) -> (x, y): random windows of the stream, y shifted by one."""
    n = len(ids) - context - 1
    if n < 1:
        raise ValueError(f"the training stream ({len(ids)} tokens) is shorter than the "
                         f"context + 1 ({context + 1})")
    offsets = np.arange(context)

    def sample(rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        starts = rng.integers(0, n + 1, batch_size)[:, None] + offsets
        return ids[starts].astype(np.int64), ids[starts + 1].astype(np.int64)

    return sample


def build_lm(cfg: LMConfig, vocab_size: int) -> tuple[GPT, Optimizer, WarmupCosineLR]:
    model = GPT(cfg.gpt_config(vocab_size), generator=cfg.seed)
    opt = make_optimizer(model, "adamw", lr=cfg.lr, weight_decay=cfg.weight_decay,
                         betas=(0.9, 0.95))
    sched = make_schedule(opt, cfg.steps, cfg.warmup, min_lr_ratio=min(cfg.min_lr / cfg.lr, 1.0))
    return model, opt, sched


#: the files of a run folder of train_lm (what a fresh start deletes)
LM_OUTPUTS = ("ckpt.safetensors", "metrics.jsonl", "model.safetensors")


def run_config(cfg: LMConfig, data: LMData) -> dict[str, Any]:
    """What a run folder's config.json holds: the settings, the GPT and the data (a run
    may be resumed only into a folder whose config.json equals this)."""
    return {"lm": asdict(cfg), "gpt": cfg.gpt_config(data.tokenizer.vocab_size).to_dict(),
            "data": data.describe()}


def train_lm(data: LMData, cfg: LMConfig, out_dir: str | os.PathLike | None = None,
             resume: bool = True, progress: Any = None, metrics: MetricsLogger | None = None,
             name: str = "lm", until: int | None = None) -> dict[str, Any]:
    """Pretrain a GPT on data.train_ids (AdamW, warm-up then cosine, clipping), evaluating
    validation bits per character every cfg.eval_every steps. With out_dir: metrics.jsonl,
    a resumable ckpt.safetensors, then model.safetensors (the model with its config and
    tokenizer), tokenizer.json and config.json (`run_config`). Returns the results (and the
    model under "model"). `until` stops early at that step (checkpointed: an interruption on
    purpose); the final files are written only once all the steps are done. Under mpiexec
    the ranks train data-parallel (see Trainer) and only rank 0 writes files."""
    t0 = time.perf_counter()
    model, opt, sched = build_lm(cfg, data.tokenizer.vocab_size)
    ckpt = model_path = None
    writes = get_rank() == 0
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        ckpt = os.path.join(out_dir, "ckpt.safetensors")
        model_path = os.path.join(out_dir, "model.safetensors")
        if writes:
            data.tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
            _write_json(os.path.join(out_dir, "config.json"), run_config(cfg, data))
        if metrics is None and writes:
            metrics = MetricsLogger(os.path.join(out_dir, "metrics.jsonl"), {"run": name})
    baselines = ngram_bpc(data.train_docs, data.val_docs)
    val_chars = data.val_chars
    periodic_ids, periodic_chars = _val_prefix(data, cfg.eval_tokens)

    def eval_fn() -> dict[str, float]:
        full = trainer.step >= cfg.steps
        ids, chars = (data.val_ids, val_chars) if full else (periodic_ids, periodic_chars)
        return {"val_bpc": bits_per_char(model, ids, chars)}

    trainer = Trainer(model, opt, lm_batches(data.train_ids, cfg.context), steps=cfg.steps,
                      batch_size=cfg.batch_size, seed=cfg.seed, scheduler=sched,
                      clip_grad_norm=cfg.clip,
                      loss_fn=lambda batch, rng: model(batch[0], batch[1])[1],
                      eval_fn=eval_fn, eval_every=cfg.eval_every, log_every=10,
                      metrics=metrics, checkpoint_path=ckpt,
                      checkpoint_every=cfg.eval_every or 250, progress=progress, name=name)
    fit = trainer.fit(resume=resume and ckpt is not None, until=until)
    if fit.step < cfg.steps:
        return {"steps": fit.step, "model": model, "evals": fit.evals}
    val_bpc = fit.last_eval.get("val_bpc", float("nan"))
    if fit.last_eval.get("step") != cfg.steps or not math.isfinite(val_bpc):
        val_bpc = bits_per_char(model, data.val_ids, val_chars)
    tokens_per_char = len(data.train_ids) / count_chars(data.train_docs)
    curve = []
    if metrics is not None and metrics.path and os.path.exists(metrics.path):
        curve = [(r["step"], r["loss"] / LN2 * tokens_per_char)
                 for r in read_metrics(metrics.path)
                 if r.get("event") == "train" and r.get("phase") == name]
    results = {"val_bpc": val_bpc, "baselines": baselines, "steps": fit.step,
               "train_bpc": fit.loss / LN2 * tokens_per_char, "train_curve": curve,
               "evals": fit.evals,
               "resumed_from": fit.resumed_from, "seconds": time.perf_counter() - t0,
               "data": data.describe(), "config": asdict(cfg)}
    if metrics is not None and writes:
        metrics.log(event="result", phase=name, step=fit.step, val_bpc=val_bpc,
                    unigram_bpc=baselines["unigram"], bigram_bpc=baselines["bigram"])
    if out_dir is not None and writes:
        save_lm(model_path, model, data.tokenizer, cfg, {"val_bpc": val_bpc,
                                                           "baselines": baselines})
    results["model"] = model
    return results


def _val_prefix(data: LMData, max_tokens: int) -> tuple[np.ndarray, int]:
    """The first validation documents, about max_tokens tokens (all of them if 0)."""
    if max_tokens <= 0 or len(data.val_ids) <= max_tokens:
        return data.val_ids, data.val_chars
    ends = np.flatnonzero(data.val_ids == data.tokenizer.eot_id)
    k = int(np.searchsorted(ends, max_tokens, side="right"))
    k = max(k, 2)
    return data.val_ids[:ends[k - 1] + 1], count_chars(data.val_docs[:k - 1])


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=_json_default)
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ====================================================================== saving
def save_lm(path: str | os.PathLike, model: GPT, tokenizer: Tokenizer,
            cfg: LMConfig | None = None, info: dict[str, Any] | None = None) -> None:
    """One file with the weights, the GPT config and the tokenizer (in the metadata)."""
    extra = {"gpt": model.config.to_dict(), "tokenizer": tokenizer.to_dict(),
             "lm": asdict(cfg) if cfg is not None else None, "info": info or {}}
    save_checkpoint(path, model, extra=extra)


def load_lm(path: str | os.PathLike) -> tuple[GPT, Tokenizer, dict[str, Any]]:
    """(model, tokenizer, extra) from save_lm's file, or from a run folder (its
    model.safetensors, else its resumable ckpt.safetensors with config.json and
    tokenizer.json)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        final = os.path.join(path, "model.safetensors")
        if os.path.exists(final):
            return load_lm(final)
        ckpt = os.path.join(path, "ckpt.safetensors")
        cfg_path = os.path.join(path, "config.json")
        tok_path = os.path.join(path, "tokenizer.json")
        for p in (ckpt, cfg_path, tok_path):
            if not os.path.exists(p):
                raise FileNotFoundError(f"{path}: no model.safetensors, and no "
                                        f"{os.path.basename(p)}")
        with open(cfg_path, encoding="utf-8") as f:
            config = json.load(f)
        model = GPT(GPTConfig(**config["gpt"]))
        load_checkpoint(ckpt, model)
        return model, load_tokenizer(tok_path), {"gpt": config["gpt"], "lm": config["lm"]}
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    from ..serialization import load_file

    _, metadata = load_file(path)
    extra = json.loads(metadata.get("tinytape", "{}")).get("extra", {})
    if "gpt" not in extra or "tokenizer" not in extra:
        raise ValueError(f"{path}: not a language model saved by tinytape (no config or "
                         f"tokenizer in it)")
    model = GPT(GPTConfig(**extra["gpt"]))
    load_checkpoint(path, model)
    return model, load_tokenizer(extra["tokenizer"]), extra


def sample_text(model: GPT, tok: Tokenizer, prompt: str = "", max_new_tokens: int = 200,
                temperature: float = 0.8, top_k: int | None = None, seed: int = 0) -> str:
    """Continue prompt (after an <|endoftext|>, as at the start of a document)."""
    ids = [tok.eot_id, *tok.encode(prompt)]
    ids = ids[-model.config.context_length:]
    out = model.generate(np.asarray([ids]), max_new_tokens, temperature=temperature,
                         top_k=top_k, generator=np.random.default_rng(seed))
    return prompt + tok.decode(out[0, len(ids):].tolist())


