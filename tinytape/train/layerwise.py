"""Greedy layer-wise pretraining and fine-tuning (Bengio et al., 2006), on the shared Trainer.

A deep network is a stack of layers (each a Linear followed by an activation) and a head.
Training it from random weights on a few labels overfits or gets stuck; instead train it
one shallow network at a time, from the input up:

- "autoencoder": the new layer h = act(W x + b) learns to reconstruct its own input,
  minimising ||x - g(h)||^2 with a decoder g (weights tied, W^T, or a separate Linear),
  optionally from a corrupted input (a denoising autoencoder: masking or Gaussian noise);
  it needs no labels, so it can use every unlabelled image;
- "supervised": the new layer is trained with a temporary head that predicts the labels,
  and the head is thrown away.

The layers below the new one are frozen (requires_grad False, left out of the optimizer):
their outputs do not change, so they are computed once and fed to the new layer. Then
fine-tuning swaps the last layer for a fresh head and trains all the weights (or only the
unfrozen ones) on the labelled data.

    model = build_mlp([64, 256, 256, 256], 10, "sigmoid", generator=0)
    pretrain_autoencoder(model.blocks(), x_unlabelled, steps=300, corruption=0.2)
    model = replace_head(model, tt.nn.Linear(256, 10, generator=1))
    finetune_mlp(model, x_few, y_few, steps=300)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import nn
from .. import ops as F
from ..autograd.grad_mode import no_grad
from ..creation import as_generator
from ..nn.module import Module, Parameter, Sequential, evaluating
from ..optim import make_optimizer
from ..tensor import Tensor
from .trainer import MetricsLogger, Progress, Trainer, TrainResult

ACTIVATIONS: dict[str, Callable[[], Module]] = {
    "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh,
}


# ---------------------------------------------------------------------------- the network

class MLP(Sequential):
    """A stack of layers (each Sequential(Linear, activation)) followed by a head (Linear).
    Indexing and iteration are Sequential's: model[-1] is the head."""

    def blocks(self) -> list[Module]:
        """The layers below the head, input first."""
        return list(self)[:-1]

    @property
    def head(self) -> Module:
        """The last layer (the output head)."""
        return self[-1]



def build_mlp(sizes: Sequence[int], num_classes: int, activation: str = "sigmoid",
              init: str = "default", generator: Any = None) -> MLP:
    """An MLP input -> sizes[1] -> ... -> sizes[-1] -> num_classes (sizes[0] is the input).

    activation: "sigmoid", "relu" or "tanh". init: "default" (PyTorch's Linear init,
    U(+-1/sqrt(fan_in)) for weights and biases, the random init of Bengio et al. 2007) or
    "glorot" (Glorot & Bengio 2010: Xavier uniform weights, zero biases).
    """
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"build_mlp: sizes must be at least 2 positive numbers, got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: one of {sorted(ACTIVATIONS)}")
    if init not in ("default", "glorot"):
        raise ValueError(f"unknown init {init!r}: 'default' or 'glorot'")
    gen = as_generator(generator)
    layers: list[Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        lin = nn.Linear(int(fan_in), int(fan_out), generator=gen)
        init_linear(lin, init, gen)
        layers.append(Sequential(lin, ACTIVATIONS[activation]()))
    head = nn.Linear(int(sizes[-1]), int(num_classes), generator=gen)
    init_linear(head, init, gen)
    return MLP(*layers, head)


def init_linear(lin: nn.Linear, init: str, gen: np.random.Generator | None) -> None:
    """Re-initialize a Linear in place: "default" keeps its PyTorch-style init, "glorot"
    draws Xavier-uniform weights and zero biases."""
    if init == "default":
        return
    nn.init.xavier_uniform_(lin.weight, generator=gen)
    if lin.bias is not None:
        nn.init.zeros_(lin.bias)


def replace_head(model: Sequential, head: Module) -> MLP:
    """The same layers (shared, not copied) with the last one swapped for `head`."""
    return MLP(*list(model)[:-1], head)


def linear_of(layer: Module) -> nn.Linear:
    """The Linear inside a layer (the layer itself, or the first Linear among its modules)."""
    for m in layer.modules():
        if isinstance(m, nn.Linear):
            return m
    raise TypeError(f"{type(layer).__name__} holds no Linear to pretrain")


def forward_features(layers: Sequence[Module], x: np.ndarray, batch_size: int = 1024
                     ) -> np.ndarray:
    """The output of `layers` applied in turn to x (no tape, eval mode), as a numpy array."""
    if not layers:
        return x
    model = Sequential(*layers)
    outs = []
    with evaluating(model):
        for i in range(0, len(x), batch_size):
            outs.append(model(Tensor._wrap(np.ascontiguousarray(x[i:i + batch_size])))
                        .numpy().copy())
    return np.concatenate(outs) if outs else np.zeros((0,), x.dtype)


def classifier_accuracy(model: Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1024
                        ) -> float:
    """The fraction of rows of x whose arg-max output is the label y (no tape, eval mode)."""
    logits = forward_features([model], x, batch_size)
    return float((logits.argmax(axis=1) == y).mean()) if len(y) else float("nan")


# ---------------------------------------------------------------------------- autoencoder

class AutoencoderLayer(Module):
    """One layer of a stacked autoencoder: encode h = layer(x), decode x_hat = out(h W' + c).

    tied: W' = W^T, the encoder's own weight (only the decoder bias c is new); otherwise
    a separate Linear. out: "sigmoid" (inputs in [0, 1]) or "linear".
    """

    def __init__(self, layer: Module, tied: bool = True, out: str = "sigmoid",
                 generator: Any = None) -> None:
        super().__init__()
        if out not in ("sigmoid", "linear"):
            raise ValueError(f"decoder output must be 'sigmoid' or 'linear', got {out!r}")
        self.layer = layer
        self.tied, self.out = tied, out
        lin = linear_of(layer)
        if tied:
            self.decoder_bias = Parameter(np.zeros(lin.in_features, lin.weight.dtype))
        else:
            self.decoder = nn.Linear(lin.out_features, lin.in_features, generator=generator)

    def encode(self, x: Tensor) -> Tensor:
        """h = layer(x): the layer being pretrained."""
        return self.layer(x)

    def decode(self, h: Tensor) -> Tensor:
        """x_hat from h, through the tied (W^T) or untied decoder."""
        if self.tied:
            z = h @ linear_of(self.layer).weight + self.decoder_bias
        else:
            z = self.decoder(h)
        return F.sigmoid(z) if self.out == "sigmoid" else z

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def corrupt(x: np.ndarray, level: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A corrupted copy of x for a denoising autoencoder: "mask" zeroes each value with
    probability `level`; "gaussian" adds N(0, level^2) noise. level 0: x itself."""
    if level <= 0:
        return x
    if kind == "mask":
        return (x * (rng.random(x.shape) >= level)).astype(x.dtype)
    if kind == "gaussian":
        return (x + rng.normal(0.0, level, x.shape)).astype(x.dtype)
    raise ValueError(f"corruption kind must be 'mask' or 'gaussian', got {kind!r}")


def reconstruction_error(ae: AutoencoderLayer, x: np.ndarray) -> float:
    """Mean over rows of ||x - x_hat||^2 (clean input, no tape)."""
    with no_grad():
        xhat = ae(Tensor._wrap(np.ascontiguousarray(x))).numpy()
    return float(((x - xhat) ** 2).sum(axis=1).mean())


def _freeze(layers: Sequence[Module], frozen: bool) -> None:
    for layer in layers:
        layer.requires_grad_(not frozen)


def pretrain_autoencoder(layers: Sequence[Module], x: np.ndarray, *, steps: int = 300,
                         batch_size: int = 64, lr: float = 1e-3, optimizer: str = "adam",
                         tied: bool = True, corruption: float = 0.0, noise: str = "mask",
                         out: str = "auto", seed: int = 0, start: int = 0,
                         metrics: MetricsLogger | None = None,
                         progress: Progress | str | bool | None = None,
                         checkpoint_dir: str | None = None) -> list[dict[str, float]]:
    """Greedy layer-wise (denoising) autoencoder pretraining of `layers`, in place.

    Layer i learns to reconstruct its input (the frozen output of layers 0..i-1 on x) from
    a corrupted copy (`corruption` > 0) or from the input itself, with a tied or untied
    decoder; then it is frozen. out: the decoder's output, "sigmoid" or "linear"; "auto"
    picks sigmoid when the layer's inputs lie in [0, 1]. start: layers[:start] are already
    trained (they stay frozen; greedy training goes on from layer `start`). Returns, per
    trained layer, the reconstruction error before and after (mean ||x - x_hat||^2 on the
    clean inputs).
    """
    _check_budget(steps, batch_size, lr)
    layers = list(layers)
    _freeze(layers, True)
    report = []
    h = forward_features(layers[:start], np.ascontiguousarray(x, dtype=np.float32))
    for i, layer in enumerate(layers[start:], start):
        kind = out
        if out == "auto":
            kind = "sigmoid" if h.min() >= 0.0 and h.max() <= 1.0 else "linear"
        layer.requires_grad_(True)
        ae = AutoencoderLayer(layer, tied=tied, out=kind, generator=seed * 1000 + i)
        opt = make_optimizer(list(ae.parameters()), optimizer, lr=lr)
        inputs = h

        def loss_fn(batch: tuple, rng: np.random.Generator, ae: AutoencoderLayer = ae
                    ) -> Tensor:
            (xb,) = batch
            xhat = ae(Tensor._wrap(corrupt(xb, corruption, noise, rng)))
            return ((xhat - Tensor._wrap(xb)) ** 2).sum() * (1.0 / len(xb))

        before = reconstruction_error(ae, inputs)
        trainer = Trainer(ae, opt, (inputs,), loss_fn=loss_fn, steps=steps,
                          batch_size=batch_size, seed=seed * 1000 + i,
                          metrics=metrics.child(layer=i) if metrics else None,
                          name=f"autoencoder layer {i + 1}", progress=progress,
                          checkpoint_path=_ckpt(checkpoint_dir, f"ae{i}"),
                          checkpoint_every=max(steps // 4, 1) if checkpoint_dir else 0)
        trainer.fit(resume=checkpoint_dir is not None)
        after = reconstruction_error(ae, inputs)
        layer.requires_grad_(False)
        report.append({"layer": i + 1, "recon_before": before, "recon_after": after})
        h = forward_features([layer], h)
    return report


def pretrain_supervised(layers: Sequence[Module], x: np.ndarray, y: np.ndarray,
                        num_classes: int, *, steps: int = 300, batch_size: int = 64,
                        lr: float = 1e-3, optimizer: str = "adam", seed: int = 0,
                        start: int = 0, metrics: MetricsLogger | None = None,
                        progress: Progress | str | bool | None = None,
                        checkpoint_dir: str | None = None) -> list[dict[str, float]]:
    """Greedy layer-wise supervised pretraining of `layers`, in place: layer i is trained,
    on the frozen output of layers 0..i-1, with a temporary Linear head that predicts y;
    then the head is thrown away and the layer frozen. start: layers[:start] are already
    trained and stay frozen. Returns, per trained layer, the training loss and accuracy of
    the layer with its temporary head."""
    _check_budget(steps, batch_size, lr)
    layers = list(layers)
    _freeze(layers, True)
    report = []
    h = forward_features(layers[:start], np.ascontiguousarray(x, dtype=np.float32))
    lossf = nn.CrossEntropyLoss()
    for i, layer in enumerate(layers[start:], start):
        layer.requires_grad_(True)
        lin = linear_of(layer)
        net = Sequential(layer, nn.Linear(lin.out_features, num_classes,
                                          generator=seed * 1000 + i))
        opt = make_optimizer(list(net.parameters()), optimizer, lr=lr)

        def loss_fn(batch: tuple, rng: np.random.Generator, net: Module = net) -> Tensor:
            xb, yb = batch
            return lossf(net(Tensor._wrap(xb)), yb)

        trainer = Trainer(net, opt, (h, y), loss_fn=loss_fn, steps=steps,
                          batch_size=batch_size, seed=seed * 1000 + i,
                          metrics=metrics.child(layer=i) if metrics else None,
                          name=f"supervised layer {i + 1}", progress=progress,
                          checkpoint_path=_ckpt(checkpoint_dir, f"sup{i}"),
                          checkpoint_every=max(steps // 4, 1) if checkpoint_dir else 0)
        result = trainer.fit(resume=checkpoint_dir is not None)
        layer.requires_grad_(False)
        report.append({"layer": i + 1, "loss": result.loss,
                       "train_acc": classifier_accuracy(net, h, y)})
        h = forward_features([layer], h)  # the temporary head is dropped here
    return report


def pretrain_layerwise(layers: Sequence[Module], objective: str, x: np.ndarray,
                       y: np.ndarray | None = None, num_classes: int | None = None,
                       **options: Any) -> list[dict[str, float]]:
    """pretrain_autoencoder (objective "autoencoder", y unused) or pretrain_supervised
    ("supervised", needs y and num_classes); options go to that function."""
    if objective == "autoencoder":
        return pretrain_autoencoder(layers, x, **options)
    if objective == "supervised":
        if y is None or num_classes is None:
            raise ValueError("supervised pretraining needs labels y and num_classes")
        return pretrain_supervised(layers, x, y, num_classes, **options)
    raise ValueError(f"objective must be 'autoencoder' or 'supervised', got {objective!r}")


# ---------------------------------------------------------------------------- fine-tuning

def finetune_mlp(model: Module, x: np.ndarray, y: np.ndarray, *, steps: int = 300,
             batch_size: int = 64, lr: float = 1e-3, optimizer: str = "adam",
             weight_decay: float = 0.0, train: str = "all", seed: int = 0,
             val: tuple[np.ndarray, np.ndarray] | None = None, eval_every: int = 0,
             metrics: MetricsLogger | None = None,
             progress: Progress | str | bool | None = None,
             checkpoint_path: str | None = None, checkpoint_every: int = 0,
             keep_best: bool = False) -> TrainResult:
    """Train `model` (layers + head) on the labelled (x, y) with cross-entropy.

    train: "all" unfreezes and trains every weight; "unfrozen" trains only the parameters
    that still require grad (e.g. just a new head on frozen pretrained layers).
    val: (x, y) to report validation accuracy every `eval_every` steps and at the end.
    keep_best: early stopping on val: the weights of the evaluation with the highest
    validation accuracy (the earliest of ties) are restored at the end.
    """
    _check_budget(steps, batch_size, lr)
    if keep_best and (val is None or eval_every < 1):
        raise ValueError("finetune_mlp: keep_best needs val and eval_every >= 1")
    if train == "all":
        model.requires_grad_(True)
    elif train != "unfrozen":
        raise ValueError(f"train must be 'all' or 'unfrozen', got {train!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("finetune_mlp: every parameter is frozen (use train='all')")
    opt = make_optimizer(params, optimizer, lr=lr, weight_decay=weight_decay)
    lossf = nn.CrossEntropyLoss()

    def loss_fn(batch: tuple, rng: np.random.Generator) -> Tensor:
        xb, yb = batch
        return lossf(model(Tensor._wrap(xb)), yb)

    eval_fn = None
    if val is not None:
        xv, yv = val

        best: dict[str, Any] = {"acc": -1.0, "state": None}

        def eval_fn() -> Mapping[str, float]:
            acc = classifier_accuracy(model, xv, yv)
            if keep_best and acc > best["acc"]:
                best.update(acc=acc, state=model.state_dict())
            return {"val_acc": acc}

    trainer = Trainer(model, opt, (np.ascontiguousarray(x, dtype=np.float32), y),
                      loss_fn=loss_fn, steps=steps, batch_size=batch_size, seed=seed,
                      eval_fn=eval_fn, eval_every=eval_every, metrics=metrics,
                      name="fine-tune", progress=progress, checkpoint_path=checkpoint_path,
                      checkpoint_every=checkpoint_every)
    result = trainer.fit(resume=checkpoint_path is not None)
    if keep_best and best["state"] is not None:
        model.load_state_dict(best["state"])
    return result


def _check_budget(steps: int, batch_size: int, lr: float) -> None:
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")


def _ckpt(directory: str | None, name: str) -> str | None:
    return None if directory is None else f"{directory}/{name}.safetensors"
