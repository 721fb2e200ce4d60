"""Training checkpoints: a model, its optimizer, its schedule and random generators in one
safetensors file, written atomically (see tinytape.serialization).

Arrays go into the tensor section ("model/<name>", "optim/<param index>/<buffer>"); the
rest (step counts, hyperparameters, schedule, generator states, anything in `extra`) is
JSON in the metadata under "tinytape". A SHA-256 digest of the tensors and that JSON is
stored beside them ("sha256"), so a flipped bit anywhere in the data is detected (an
accident, not an attack: a forger can recompute it). Loading never executes code, and a
truncated or corrupted file raises CheckpointError before anything is restored. Floats
survive the JSON round trip exactly, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .serialization import CheckpointError, load_file, save_file

FORMAT = "tinytape-checkpoint"
VERSION = "1"


def save_checkpoint(path: str | os.PathLike, model: Any = None, optimizer: Any = None,
                    scheduler: Any = None, generators: Mapping[str, np.random.Generator] | None
                    = None, extra: Mapping[str, Any] | None = None) -> None:
    """Write model/optimizer/scheduler state, generator states (those given, and those the
    model's modules hold for dropout) and JSON-able `extra`."""
    tensors: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"extra": dict(extra or {})}
    if model is not None:
        for name, arr in model.state_dict().items():
            tensors[f"model/{name}"] = arr
        meta["model"] = True
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, buffers in sd["state"].items():
            for key, value in buffers.items():
                if isinstance(value, np.ndarray):
                    tensors[f"optim/{index}/{key}"] = value
                else:
                    scalars.setdefault(str(index), {})[key] = _plain(value)
        meta["optimizer"] = {"scalars": scalars, "param_groups": _plain(sd["param_groups"])}
    if scheduler is not None:
        meta["scheduler"] = _plain(scheduler.state_dict())
    generators = {**module_generators(model), **(generators or {})}
    if generators:
        meta["generators"] = {k: g.bit_generator.state for k, g in generators.items()}
    try:
        text = json.dumps(meta)
    except TypeError as e:
        raise TypeError(f"save_checkpoint: state that is not JSON-serializable: {e}") from None
    save_file(tensors, path, {"format": FORMAT, "version": VERSION, "tinytape": text,
                              "sha256": _digest(tensors, text)})


def _digest(tensors: Mapping[str, np.ndarray], text: str) -> str:
    """SHA-256 of the tensors (name, dtype, shape and little-endian bytes, by name) and the
    metadata JSON."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        h.update(f"{name}|{le.dtype.str}|{arr.shape}|".encode())
        h.update(np.ascontiguousarray(le).tobytes())
    h.update(text.encode())
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike, model: Any = None, optimizer: Any = None,
                    scheduler: Any = None, generators: Mapping[str, np.random.Generator] | None
                    = None, strict: bool = True) -> dict[str, Any]:
    """Restore what save_checkpoint wrote into the given objects (in place); returns extra."""
    tensors, metadata = load_file(path)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{os.fspath(path)}: not a tinytape checkpoint "
                              f"(format {metadata.get('format')!r})")
    stored = metadata.get("sha256")  # files written before the digest have none
    if stored is not None and stored != _digest(tensors, metadata.get("tinytape", "")):
        raise CheckpointError(f"{os.fspath(path)}: corrupted: the data does not match the "
                              "checksum stored with it")
    try:
        meta = json.loads(metadata["tinytape"])
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{os.fspath(path)}: unreadable checkpoint metadata ({e})") from None
    if model is not None:
        if not meta.get("model"):
            raise CheckpointError(f"{os.fspath(path)}: holds no model state")
        state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
        model.load_state_dict(state, strict=strict)
    if optimizer is not None:
        if "optimizer" not in meta:
            raise CheckpointError(f"{os.fspath(path)}: holds no optimizer state")
        state: dict[int, dict[str, Any]] = {}
        for key, arr in tensors.items():
            if key.startswith("optim/"):
                _, index, name = key.split("/", 2)
                state.setdefault(int(index), {})[name] = arr
        for index, scalars in meta["optimizer"]["scalars"].items():
            state.setdefault(int(index), {}).update(scalars)
        optimizer.load_state_dict({"state": state,
                                   "param_groups": meta["optimizer"]["param_groups"]})
    if scheduler is not None:
        if "scheduler" not in meta:
            raise CheckpointError(f"{os.fspath(path)}: holds no scheduler state")
        scheduler.load_state_dict(meta["scheduler"])
    for name, g in {**module_generators(model), **(generators or {})}.items():
        saved = meta.get("generators", {}).get(name)
        if saved is None:
            raise CheckpointError(f"{os.fspath(path)}: holds no state for generator {name!r}")
        g.bit_generator.state = saved
    return meta["extra"]


def module_generators(model: Any) -> dict[str, np.random.Generator]:
    """Random generators held by the model's modules (dropout masks), each once, so that
    a resumed run draws the same masks as an uninterrupted one."""
    found: dict[str, np.random.Generator] = {}
    seen: set[int] = set()
    if model is None:
        return found
    for mod_name, m in model.named_modules():
        for attr, value in vars(m).items():
            if isinstance(value, np.random.Generator) and id(value) not in seen:
                seen.add(id(value))
                found[f"module:{mod_name}.{attr}" if mod_name else f"module:{attr}"] = value
    return found


def _plain(value: Any) -> Any:
    """Tuples to lists and numpy scalars to Python numbers, for JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
