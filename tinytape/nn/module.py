"""Module and Parameter: the building blocks of networks, with PyTorch-familiar names.

A Module holds Parameters (leaf tensors that require grad), buffers (tensors that are
state but not trained) and sub-modules, found through attribute assignment.
`forward` defines the computation; calling the module runs it and the tape records it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..autograd.grad_mode import no_grad
from ..autograd.hooks import RemovableHandle, hook_ids
from ..tensor import Tensor


class Parameter(Tensor):
    """A tensor that is a module's trainable state (requires_grad=True by default).
    Made from a Tensor it shares that tensor's memory; from other data it copies."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        from ..creation import as_array

        arr = data.data if isinstance(data, Tensor) else as_array(data)
        if arr.dtype.kind != "f":
            raise TypeError(f"Parameter: needs float data, got {arr.dtype}")
        self.data, self.grad, self._node = arr, None, None
        self._version = data._version if isinstance(data, Tensor) else [0]
        self._retains_grad, self.requires_grad = False, bool(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + Tensor.__repr__(self)


class Module:
    """Base class of every layer and model."""

    training: bool
    #: forward hooks by registration id; a shared empty default until one is registered
    _forward_hooks: dict[int, Callable[..., Any]] = {}
    #: float64 sources of the tables registered with register_table (name -> array)
    _exact_tables: dict[str, np.ndarray] = {}

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Non-trained state saved with the module (unless persistent=False)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name} must be a Tensor or None")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def register_table(self, name: str, table: np.ndarray, dtype: Any) -> None:
        """A non-persistent buffer computed in float64 (a positional table), kept in `dtype`.
        Converting the module (to, double, float) rounds it again from the float64 values,
        not from the rounded ones: a float32 module made float64 gets exact tables."""
        exact = np.asarray(table, dtype=np.float64)
        if not self._exact_tables:
            object.__setattr__(self, "_exact_tables", {})
        self._exact_tables[name] = exact
        self.register_buffer(name, Tensor._wrap(exact.astype(dtype)), persistent=False)

    # ------------------------------------------------------------ running
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, out)
                if result is not None:
                    out = result
        return out

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]
                              ) -> RemovableHandle:
        """Call hook(module, args, output) after every forward of this module (as PyTorch);
        a result other than None replaces the output. Hooks run in registration order."""
        if "_forward_hooks" not in self.__dict__:
            object.__setattr__(self, "_forward_hooks", {})
        key = next(hook_ids)
        self._forward_hooks[key] = hook
        return RemovableHandle(self._forward_hooks, key)

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    # ------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant, each once, depth first."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            children = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items()
                        if c is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True
                         ) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs; a parameter shared by two modules (weight tying) is
        listed once, under its first name."""
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, m in modules:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for mod_name, m in self.named_modules():
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call fn on every sub-module (children first) and on this module."""
        for m in reversed(list(self.modules())):
            fn(m)
        return self

    # ------------------------------------------------------------ gradients
    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor._wrap(np.zeros_like(p.data))

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter of this module."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        return int(sum(p.data.size for p in self.parameters()
                       if p.requires_grad or not trainable_only))

    # ------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """name -> array (a copy) for every parameter and persistent buffer. A tied
        parameter appears under each of its names, as in PyTorch."""
        out: OrderedDict[str, np.ndarray] = OrderedDict()
        for mod_name, m in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name, p in m._parameters.items():
                if p is not None:
                    out[pre + name] = p.data.copy()
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    out[pre + name] = b.data.copy()
        return out

    def _state_slots(self) -> dict[str, Tensor]:
        slots: dict[str, Tensor] = {}
        for mod_name, m in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name, p in m._parameters.items():
                if p is not None:
                    slots[pre + name] = p
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent:
                    slots[pre + name] = b
        return slots

    def load_state_dict(self, state: dict[str, Any], strict: bool = True
                        ) -> tuple[list[str], list[str]]:
        """Copy values into this module's parameters and buffers (in place).

        strict: every key must match (missing or unexpected keys raise KeyError naming
        them). A shape mismatch always raises ValueError naming the key and both shapes.
        Returns (missing, unexpected) key lists.
        """
        slots = self._state_slots()
        missing = [k for k in slots if k not in state]
        unexpected = [k for k in state if k not in slots]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys: {missing}")
            if unexpected:
                parts.append(f"unexpected keys: {unexpected}")
            raise KeyError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts))
        for key, target in slots.items():
            if key not in state:
                continue
            value = state[key]
            arr = value.data if isinstance(value, Tensor) else np.asarray(value)
            if arr.shape != target.shape:
                raise ValueError(f"load_state_dict: {key} has shape {arr.shape} in the state "
                                 f"but {target.shape} in the module")
        with no_grad():
            for key, target in slots.items():
                if key in state:
                    value = state[key]
                    arr = value.data if isinstance(value, Tensor) else np.asarray(value)
                    target.data[...] = arr.astype(target.dtype, copy=False)
                    target._version[0] += 1
        return missing, unexpected

    def to(self, dtype: Any) -> Module:
        """Convert every float parameter and buffer to `dtype` (in place of the data)."""
        dt = np.dtype(dtype)
        for t in list(self.parameters()) + [b for _, b in self.named_buffers()]:
            if t.data.dtype.kind == "f":
                t.data = t.data.astype(dt)
                t._version[0] += 1
        for m in self.modules():
            for name, exact in m._exact_tables.items():
                m._buffers[name].data = exact.astype(dt)
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        lines += [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in
                  self._modules.items() if m is not None]
        if len(lines) == 1 and not self._modules:
            return f"{type(self).__name__}({lines[0]})"
        if not lines:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def summary(self) -> str:
        """The repr tree followed by parameter counts."""
        total, trainable = self.num_parameters(), self.num_parameters(trainable_only=True)
        return f"{self!r}\nparameters: {total:,} ({trainable:,} trainable)"


class Sequential(Module):
    """Modules applied one after another."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class ModuleList(Module):
    """A list of modules whose parameters the parent sees."""

    def __init__(self, modules: list[Module] | None = None) -> None:
        super().__init__()
        for m in modules or []:
            self.append(m)

    def append(self, m: Module) -> ModuleList:
        if not isinstance(m, Module):
            raise TypeError(f"ModuleList: expected a Module, got {type(m).__name__}")
        setattr(self, str(len(self._modules)), m)
        return self

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


@contextmanager
def evaluating(*modules: Module) -> Iterator[None]:
    """Evaluation inside: eval mode (no dropout) and no tape recorded. On exit every
    submodule gets back its own train/eval mode, even after an exception.

        with nn.evaluating(model):
            logits = model(x)
    """
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        with no_grad():
            yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
