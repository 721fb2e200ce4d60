"""Grad mode, per thread: whether new ops are recorded on the tape (no_grad, enable_grad).

The mode lives in a ContextVar, not a threading.local: a new thread starts with recording
on, as with a thread-local, and an asyncio task's no_grad block does not leak into the
other tasks of its thread. Reading it is a C call (`_grad_enabled()`), about a fifth of a
thread-local attribute's cost, which the tape pays on every op.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_GRAD_ENABLED: ContextVar[bool] = ContextVar("tinytape_grad_enabled", default=True)
#: the tape's hot paths read the mode with this (ContextVar.get, a C function)
_grad_enabled = _GRAD_ENABLED.get


def is_grad_enabled() -> bool:
    """True when new ops are recorded for backward (per thread)."""
    return _GRAD_ENABLED.get()


class set_grad_enabled:
    """Context manager (and decorator) that turns recording on or off in this thread."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev = True

    def __enter__(self) -> None:
        self.prev = _GRAD_ENABLED.get()
        _GRAD_ENABLED.set(self.mode)

    def __exit__(self, *exc: object) -> None:
        _GRAD_ENABLED.set(self.prev)

    def __call__(self, fn: F) -> F:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(set_grad_enabled):
    """Within the block (or decorated function) ops are not recorded."""

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Within the block ops are recorded again (inside a no_grad block, say)."""

    def __init__(self) -> None:
        super().__init__(True)
