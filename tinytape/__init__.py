"""tinytape: a tape-based reverse-mode autograd engine with fast C kernels.

    import tinytape as tt
    x = tt.randn(3, 4, generator=0, requires_grad=True)
    loss = (x @ x.T).tanh().sum()
    loss.backward()            # x.grad now holds d(loss)/dx
"""

import numpy as np

# _compiled first: with TINYTAPE_PURE_PYTHON=1 the tape is then imported from its sources
from . import _compiled, backend, nn, optim, profiler  # noqa: E402, I001, F401
from ._version import __version__
from .autograd.function import Function
from .autograd.functional import grad
from .autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from .config import config, get_num_threads, set_num_threads, show_config
from .creation import (
                       arange,
                       from_numpy,
                       full,
                       full_like,
                       manual_seed,
                       ones,
                       ones_like,
                       rand,
                       randint,
                       randn,
                       tensor,
                       zeros,
                       zeros_like,
)
from .ops import *  # noqa: F403
from .ops import __all__ as _ops_all
from .tensor import Tensor

float32 = np.float32
float64 = np.float64
int64 = np.int64
bool_ = np.bool_

__all__ = [
    "__version__", "backend", "nn", "optim", "profiler", "config", "get_num_threads",
    "set_num_threads", "show_config",
    "Tensor", "Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "grad", "gradcheck", "gradgradcheck", "GradcheckError",
    "tensor", "from_numpy", "zeros", "ones", "full", "arange", "zeros_like", "ones_like",
    "full_like", "rand", "randn", "randint", "manual_seed",
    "float32", "float64", "int64", "bool_",
    *[n for n in _ops_all if n not in ("REGISTRY", "OpInfo", "Sample")],
]
