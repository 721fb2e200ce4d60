"""Thread-local switch for recording ops on the tape: no_grad, enable_grad."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class _Mode(threading.local):
    enabled: bool = True


_mode = _Mode()


def is_grad_enabled() -> bool:
    """True when new ops are recorded for backward (per thread)."""
    return _mode.enabled


class set_grad_enabled:
    """Context manager (and decorator) that turns recording on or off in this thread."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev = True

    def __enter__(self) -> None:
        self.prev = _mode.enabled
        _mode.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self.prev

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
