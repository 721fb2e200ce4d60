"""Optimizer: the base class, with param groups, zero_grad and resumable state.

A subclass declares its hyperparameters (`defaults`), checks them in
`_check_group`, and updates one parameter at a time in `_update`, on numpy arrays,
in the parameter's dtype. The base class does the rest: it skips parameters
whose .grad is None, casts a grad to its parameter's dtype, bumps the
parameter's version counter after each in-place update, and saves and restores
the optimizer state.

state_dict() looks like PyTorch's, and is made of plain values only:

    {"state": {0: {"step": 10, "exp_avg": ndarray, ...}, 1: {...}},
     "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), ..., "params": [0, 1]}]}

Parameters are numbered in param_groups order. The state holds copies of the
buffers (numpy arrays, in the parameter's dtype) and Python ints and floats. The
groups are JSON-able (a tuple comes back from JSON as a list, and load_state_dict
accepts that). So a checkpoint can keep the arrays in a flat file, such as
safetensors, and everything else as JSON.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor

StateDict = dict[str, Any]


class Optimizer:
    """Base class of the optimizers.

    params: an iterable of tensors, or of dicts that each hold "params" (the group's
    tensors) plus options that override `defaults` for that group.
    """

    # Names of the per-parameter state that subclasses keep, for load_state_dict checks.
    _array_state: tuple[str, ...] = ()  # buffers shaped like the parameter
    _int_state: tuple[str, ...] = ()  # counters (Python ints)
    _required_state: tuple[str, ...] = ()  # needed in every non-empty per-parameter state

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]],
                 defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        if isinstance(params, Tensor):
            raise TypeError("params should be an iterable of tensors or of dicts, "
                            "got a single Tensor; wrap it in a list")
        if isinstance(params, (set, frozenset)):
            raise TypeError("params should be an ordered iterable (a list), not a set: "
                            "the parameter order numbers the saved state")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        if not any(group["params"] for group in self.param_groups):
            raise ValueError(f"{type(self).__name__} got an empty parameter list "
                             "(every param group is empty)")

    # ------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters, with options that override the defaults."""
        where = f"param group {len(self.param_groups)}"
        if not isinstance(param_group, dict):
            raise TypeError(f"{where}: expected a dict with 'params', got "
                            f"{type(param_group).__name__} (pass either tensors or dicts, "
                            "not a mix)")
        if "params" not in param_group:
            raise ValueError(f"{where}: the dict has no 'params' key")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{where}: 'params' should be an ordered iterable (a list), "
                            "not a set")
        params = list(params)
        seen = {id(p): i for i, p in enumerate(self._all_params())}
        for j, p in enumerate(params):
            if not isinstance(p, Tensor):
                hint = (" (named_parameters() gives (name, tensor) pairs; pass parameters()"
                        " or see param_groups_for_weight_decay)") if isinstance(p, tuple) else ""
                raise TypeError(f"{where}: params[{j}] is a {type(p).__name__}, "
                                f"not a Tensor{hint}")
            if not p.is_leaf:
                raise ValueError(f"{where}: params[{j}] is not a leaf tensor (it was computed "
                                 "by a recorded op); an optimizer can only update leaves")
            if not p.requires_grad:
                raise ValueError(f"{where}: params[{j}] (shape {p.shape}) does not require grad; "
                                 "leave frozen parameters out of the optimizer")
            if id(p) in seen:
                raise ValueError(f"{where}: params[{j}] (shape {p.shape}) is given more than "
                                 f"once (it is already parameter {seen[id(p)]}); "
                                 "each parameter may appear in only one group, once")
            seen[id(p)] = len(seen)
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_group(group, where)
        self.param_groups.append(group)

    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _check_group(self, group: dict[str, Any], where: str) -> None:
        """Validate (and normalize to Python numbers) one group's hyperparameters."""

    # ------------------------------------------------------------ gradients
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set .grad to None (default), or fill it with zeros."""
        for p in self._all_params():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            elif p.grad.grad_fn is not None or p.grad.requires_grad:
                p.grad = Tensor._wrap(np.zeros_like(p.grad.data))  # cut from its graph
            else:
                p.grad.data[...] = 0
                p.grad._version[0] += 1

    # ------------------------------------------------------------ update
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a .grad; returns closure() if one is given.

        closure: re-evaluates the model and returns the loss (run with grad enabled).
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grad = p.grad.data
                    if grad.shape != p.data.shape:
                        raise ValueError(f"parameter {index} has shape {p.data.shape} but its "
                                         f".grad has shape {grad.shape}")
                    if grad.dtype != p.data.dtype:
                        grad = grad.astype(p.data.dtype)
                    state = self.state.get(p)
                    if state is None:
                        state = {}
                    self._update(p.data, grad, state, group)
                    if state:
                        self.state[p] = state
                    p._version[0] += 1
                index += 1
        return loss

    def _update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any],
                group: dict[str, Any]) -> None:
        """Update `param` in place from `grad` (never modify grad: it is the user's)."""
        raise NotImplementedError

    # ------------------------------------------------------------ state
    def state_dict(self) -> StateDict:
        """A copy of the optimizer state: per-parameter state by index, and the groups.

        {"state": {index: {name: ndarray | int | float}},
         "param_groups": [{hyperparameter: value, ..., "params": [index, ...]}]}
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index[id(p)] = len(index)
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p, st in self.state.items():
            if st:
                state[index[id(p)]] = {k: v.copy() if isinstance(v, np.ndarray) else v
                                       for k, v in st.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: StateDict) -> None:
        """Restore a state_dict(): per-parameter state and every group's hyperparameters.

        The number of groups, of parameters per group, and every buffer's shape must
        match (ValueError naming what differs). Buffers are copied, in each
        parameter's dtype. The loaded hyperparameters (lr, ...) replace the current ones.
        Nothing is changed if the state does not fit.
        """
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or "state" not in state_dict \
                or "param_groups" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and "
                             "'param_groups' (from Optimizer.state_dict())")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the loaded state has "
                             f"{len(saved_groups)} param groups, this optimizer has "
                             f"{len(self.param_groups)}")
        by_index: dict[int, Tensor] = {}
        new_groups = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            where = f"param group {i}"
            if not isinstance(saved, Mapping) or "params" not in saved:
                raise ValueError(f"{name}.load_state_dict: {where} of the loaded state is not a "
                                 "dict with 'params'")
            saved_params = list(saved["params"])
            if len(saved_params) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: {where} has {len(saved_params)} "
                                 f"parameters in the loaded state and {len(group['params'])} "
                                 "in this optimizer")
            for k, p in zip(saved_params, group["params"]):
                by_index[_as_index(k, "param_groups")] = p
            new = {}
            for key, value in saved.items():
                if key == "params":
                    continue
                if isinstance(self.defaults.get(key), tuple) and isinstance(value, list):
                    value = tuple(value)  # JSON gives tuples back as lists
                new[key] = copy.deepcopy(value)
            missing = [k for k in self.defaults if k not in new]
            if missing:
                raise ValueError(f"{name}.load_state_dict: {where} of the loaded state has no "
                                 f"{', '.join(map(repr, missing))} (is it from another "
                                 "optimizer?)")
            new["params"] = group["params"]
            self._check_group(new, f"{where} of the loaded state")
            new_groups.append(new)

        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, saved_st in state_dict["state"].items():
            idx = _as_index(key, "state")
            if idx not in by_index:
                raise ValueError(f"{name}.load_state_dict: the loaded state has an entry for "
                                 f"parameter {idx}, but the param groups number only "
                                 f"{len(by_index)} parameters")
            p = by_index[idx]
            st = {}
            for sname, value in saved_st.items():
                where = f"state of parameter {idx}: '{sname}'"
                if sname in self._array_state:
                    arr = np.asarray(value)
                    if arr.shape != p.data.shape:
                        raise ValueError(f"{name}.load_state_dict: {where} has shape "
                                         f"{arr.shape}, the parameter has shape {p.data.shape}")
                    if arr.dtype.kind not in "fiu":
                        raise ValueError(f"{name}.load_state_dict: {where} has dtype "
                                         f"{arr.dtype}, expected a float array")
                    st[sname] = np.array(arr, dtype=p.data.dtype, copy=True)
                elif sname in self._int_state:
                    st[sname] = _as_count(value, f"{name}.load_state_dict: {where}")
                else:
                    known = self._array_state + self._int_state
                    raise ValueError(f"{name}.load_state_dict: {where} is not state of {name} "
                                     f"(it keeps {', '.join(map(repr, known)) or 'no state'}); "
                                     "is the state from another optimizer?")
            if st:
                lacking = [k for k in self._required_state if k not in st]
                if lacking:
                    raise ValueError(f"{name}.load_state_dict: the state of parameter {idx} "
                                     f"lacks {', '.join(map(repr, lacking))}")
                new_state[p] = st

        for group, new in zip(self.param_groups, new_groups):
            group.clear()
            group.update(new)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
            lines.append(f"    params: {len(group['params'])} tensors")
        lines.append(")")
        return "\n".join(lines)


# ------------------------------------------------------------ checks shared by subclasses
def _as_index(key: Any, where: str) -> int:
    """A parameter index from a state_dict key (an int, or its string form after JSON)."""
    try:
        if isinstance(key, bool):
            raise ValueError
        if isinstance(key, str):
            return int(key)
        if isinstance(key, numbers.Integral):
            return int(key)
        raise ValueError
    except ValueError:
        raise ValueError(f"load_state_dict: {where} has parameter index {key!r}; "
                         "expected an int") from None


def _as_count(value: Any, where: str) -> int:
    v = value.item() if isinstance(value, np.ndarray) and value.size == 1 else value
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or v != int(v) or v < 0:
        raise ValueError(f"{where} should be a non-negative integer, got {value!r}")
    return int(v)


def _number(group: dict[str, Any], key: str, where: str, *, minimum: float = 0.0) -> float:
    """group[key] as a Python float, checked to be a finite number >= minimum."""
    value = group[key]
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {key} should be a number, got {value!r}")
    value = float(value)
    if not value >= minimum:  # also catches NaN
        raise ValueError(f"{where}: invalid {key} {value!r} (must be >= {minimum:g})")
    group[key] = value
    return value


def _flag(group: dict[str, Any], key: str) -> bool:
    group[key] = bool(group[key])
    return group[key]
