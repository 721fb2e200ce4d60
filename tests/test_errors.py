"""Every error path of the ops and nn layers: the exception type and its message (which
names the shapes, dtypes or values at fault). The last test runs all the cases under a
line tracer and checks that every `raise` statement in tinytape/ops and tinytape/nn was
reached, so a new error path without a case here fails it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinytape as tt
from tinytape import _compiled, nn
from tinytape import distributed as dist
from tinytape.nn import functional as F
from tinytape.nn.parallel import DistributedDataParallel
from tinytape.ops import REGISTRY
from tinytape.ops.registry import register

PACKAGE = Path(tt.__file__).parent


def x23():
    return tt.ones(2, 3)


def i3():
    return tt.tensor(np.arange(3))


class _NoInit(nn.Module):
    def __init__(self):
        self.w = 1  # before super().__init__()


class _Bare(nn.Module):
    pass


def _linear_state(shape):
    return {"weight": np.zeros(shape), "bias": np.zeros(3)}


def _in_group(call):
    """call() inside a process group of one (init, then destroy whatever happens)."""
    dist.init_process_group()
    try:
        return call()
    finally:
        dist.destroy_process_group()


def _without_group(call):
    dist.destroy_process_group()
    return call()


CASES = [
    # ops/_util.py
    ("mixed dtypes", lambda: x23() + tt.ones(2, 3, dtype="float64"), TypeError,
     r"add: mixed dtypes float32 \(shape \(2, 3\)\) and float64 \(shape \(2, 3\)\)"),
    ("float required", lambda: tt.softmax(i3()), TypeError,
     "softmax: expected a float32/float64 tensor, got int64"),
    ("axis and dim", lambda: x23().sum(axis=0, dim=1), TypeError, "pass axis or dim, not both"),
    ("axis out of range", lambda: x23().sum(axis=2), ValueError,
     "sum: axis 2 is out of range for a tensor with 2 dims"),
    ("repeated axis", lambda: x23().sum(axis=(0, -2)), ValueError,
     r"sum: repeated axis in \(0, -2\)"),
    # ops/arithmetic.py
    ("binary broadcast", lambda: x23() + tt.ones(4), ValueError,
     r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast together"),
    ("pow int base", lambda: tt.pow(i3(), 2.0), TypeError,
     "pow: base must be a float tensor, got int64"),
    ("compare broadcast", lambda: tt.lt(x23(), tt.ones(4)), ValueError,
     r"lt: shapes \(2, 3\) and \(4,\) cannot be broadcast together"),
    ("logical_not float", lambda: tt.logical_not(x23()), TypeError,
     "logical_not: expected a bool tensor, got float32"),
    # ops/fused.py
    ("softmax 0-d", lambda: tt.softmax(tt.tensor(1.0)), ValueError,
     "softmax: needs at least one dimension, got a 0-d tensor"),
    ("softmax axis", lambda: tt.softmax(x23(), axis=2), ValueError,
     r"softmax: axis 2 is out of range for a tensor of shape \(2, 3\)"),
    ("layer_norm 0-d", lambda: tt.layer_norm(tt.tensor(1.0)), ValueError,
     "layer_norm: needs at least one dimension, got a 0-d tensor"),
    ("cross_entropy reduction", lambda: tt.cross_entropy(x23(), [0, 1], reduction="avg"),
     ValueError, "cross_entropy: reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    # ops/indexing.py
    ("getitem", lambda: x23()[5], IndexError,
     r"index \[5\] is invalid for a tensor of shape \(2, 3\): index 5 is out of bounds"),
    ("embedding float indices", lambda: tt.embedding(x23(), np.array([0.5])), TypeError,
     "embedding: indices must be integers, got dtype float64"),
    ("embedding 1-d weight", lambda: tt.embedding(tt.ones(6), np.array([0])), ValueError,
     r"embedding: weight must be 2-D \(num, dim\), got shape \(6,\)"),
    ("embedding range", lambda: tt.embedding(x23(), np.array([1, 2, -1])), IndexError,
     "embedding: index 2 is out of range for 2 rows"),
    # ops/matmul.py
    ("matmul 0-d", lambda: tt.matmul(tt.tensor(1.0), tt.ones(3)), ValueError,
     r"matmul: 0-d operands are not allowed \(shapes \(\) and \(3,\)\)"),
    ("matmul mixed", lambda: tt.matmul(tt.tensor(np.ones((2, 2), int)), tt.ones(2, 2)),
     TypeError, r"matmul: mixed dtypes int64 \(shape \(2, 2\)\) and float32"),
    ("matmul int", lambda: tt.matmul(tt.tensor(np.ones((2, 2), int)),
                                     tt.tensor(np.ones((2, 2), int))),
     TypeError, "matmul: expected float tensors, got int64"),
    ("matmul inner", lambda: x23() @ tt.ones(4, 5), ValueError,
     r"matmul: shapes \(2, 3\) and \(4, 5\) do not match: 3 != 4"),
    ("matmul batch", lambda: tt.ones(2, 2, 3) @ tt.ones(3, 3, 4), ValueError,
     r"matmul: batch dims of \(2, 2, 3\) and \(3, 3, 4\) do not broadcast"),
    ("linear not tensor", lambda: tt.linear(np.ones((2, 3)), tt.ones(4, 3)), TypeError,
     "linear: expected Tensors, got ndarray"),
    ("linear 1-d weight", lambda: tt.linear(x23(), tt.ones(3)), ValueError,
     r"linear: weight must be 2-D \(out, in\), got shape \(3,\)"),
    ("linear input", lambda: tt.linear(tt.ones(2, 4), tt.ones(5, 3)), ValueError,
     r"linear: input of shape \(2, 4\) does not end in 3 \(weight \(5, 3\)\)"),
    ("linear bias", lambda: tt.linear(x23(), tt.ones(5, 3), tt.ones(4)), ValueError,
     r"linear: bias must have shape \(5,\), got \(4,\)"),
    ("linear dtypes", lambda: tt.linear(x23(), tt.ones(5, 3, dtype="float64")), TypeError,
     "linear: expected float tensors of one dtype, got float32, float64"),
    # ops/reduction.py
    ("mean empty", lambda: tt.zeros(0, 3).mean(axis=0), ValueError,
     r"mean: reducing an empty axis of a tensor of shape \(0, 3\)"),
    ("max empty", lambda: tt.zeros(0, 3).max(axis=0), ValueError,
     r"max: reducing an empty axis of a tensor of shape \(0, 3\)"),
    ("var one element", lambda: tt.ones(1).var(), ValueError,
     r"var: 1 elements with correction=1 over axis None of a tensor of shape \(1,\)"),
    ("logsumexp empty", lambda: tt.logsumexp(tt.zeros(0, 3), axis=0), ValueError,
     r"logsumexp: reducing an empty axis of a tensor of shape \(0, 3\)"),
    ("sum_to_shape", lambda: x23().sum_to_shape((1, 2, 3)), ValueError,
     r"sum_to_shape: shape \(1, 2, 3\) does not broadcast to \(2, 3\)"),
    ("sum_to_shape incompatible", lambda: x23().sum_to_shape((4,)), ValueError,
     r"Mismatch is between arg 0 with shape \(4,\) and arg 1 with shape \(2, 3\)"),
    # ops/registry.py
    ("registered twice", lambda: register(REGISTRY["add"]), ValueError,
     "op 'add' is registered twice"),
    # ops/selection.py
    ("maximum broadcast", lambda: tt.maximum(x23(), tt.ones(4)), ValueError,
     r"maximum: shapes \(2, 3\) and \(4,\) cannot be broadcast together"),
    ("where float condition", lambda: tt.where(np.ones(3), tt.ones(3), tt.ones(3)), TypeError,
     "where: the condition must be a bool tensor, got dtype float64"),
    ("where broadcast", lambda: tt.where(np.ones(2, bool), x23(), tt.ones(3)), ValueError,
     r"where: shapes \(2, 3\) and \(3,\) and \(2,\) cannot be broadcast together"),
    ("masked_fill", lambda: x23().masked_fill(np.ones(4, bool), 0.0), ValueError,
     r"masked_fill: mask of shape \(4,\) does not broadcast to the tensor's shape \(2, 3\)"),
    # ops/shape.py
    ("reshape count", lambda: x23().reshape(4), ValueError,
     r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into shape \(4,\)"),
    ("reshape two -1", lambda: x23().reshape(-1, -1), ValueError,
     r"reshape: cannot reshape .* into shape \(-1, -1\)"),
    ("reshape -1 remainder", lambda: x23().reshape(-1, 4), ValueError,
     r"reshape: cannot reshape .* into shape \(-1, 4\)"),
    ("permute", lambda: x23().permute(0, 0), ValueError,
     r"permute: \(0, 0\) is not a permutation of the 2 dims of a tensor of shape \(2, 3\)"),
    ("expand fewer dims", lambda: x23().expand(3), ValueError,
     r"expand: cannot expand a tensor of shape \(2, 3\) to fewer dims \(3,\)"),
    ("expand", lambda: x23().expand(4, 3), ValueError,
     r"expand: a tensor of shape \(2, 3\) cannot be expanded to shape \(4, 3\)"),
    ("squeeze", lambda: x23().squeeze(1), ValueError,
     r"squeeze: dim 1 of a tensor of shape \(2, 3\) has size 3, not 1"),
    ("unsqueeze", lambda: x23().unsqueeze(3), ValueError,
     "unsqueeze: axis 3 is out of range for a result with 3 dims"),
    ("cat nothing", lambda: tt.cat([]), ValueError, "cat: needs at least one tensor"),
    ("cat arrays", lambda: tt.cat([x23(), np.ones((2, 3))]), TypeError,
     "cat: expects a sequence of tensors"),
    ("cat dtypes", lambda: tt.cat([x23(), tt.ones(2, 3, dtype="float64")]), TypeError,
     r"cat: mixed dtypes \['float32', 'float64'\]"),
    ("cat shapes", lambda: tt.cat([x23(), tt.ones(2, 4)]), ValueError,
     r"cat: tensor 1 has shape \(2, 4\), which does not match tensor 0's shape \(2, 3\) "
     "outside axis 0"),
    ("stack shapes", lambda: tt.stack([x23(), tt.ones(3, 2)]), ValueError,
     r"stack: tensor 1 has shape \(3, 2\), tensor 0 has shape \(2, 3\)"),
    ("split size", lambda: x23().split(0), ValueError, "split: size must be positive, got 0"),
    ("split sizes", lambda: x23().split([1, 1], axis=1), ValueError,
     r"split: sizes \[1, 1\] do not add up to 3, the length of axis 1 of a tensor of shape "
     r"\(2, 3\)"),
    # ops/unary.py
    ("gelu form", lambda: tt.gelu(x23(), approximate="none"), ValueError,
     "gelu: only approximate='tanh' is available, got 'none'"),
    ("clamp no bound", lambda: tt.clamp(x23()), ValueError, "clamp: give min, max or both"),
    ("clamp bounds", lambda: tt.clamp(x23(), 1.0, 0.0), ValueError,
     "clamp: min 1.0 is greater than max 0.0"),
    # nn/attention.py
    ("attention heads", lambda: nn.MultiHeadAttention(10, 3), ValueError,
     "MultiHeadAttention: d_model 10 is not divisible by n_heads 3"),
    ("attention relative", lambda: nn.MultiHeadAttention(8, 2, relative="sideways"),
     ValueError, r"MultiHeadAttention: relative must be one of \(None, 'rotary', 'alibi', "
     r"'relative'\), got 'sideways'"),
    ("attention input", lambda: nn.MultiHeadAttention(8, 2)(tt.ones(2, 8)), ValueError,
     r"MultiHeadAttention: expected input \(B, T, 8\), got \(2, 8\)"),
    ("attention padding", lambda: nn.MultiHeadAttention(8, 2)(
        tt.ones(2, 4, 8), padding_mask=np.ones((2, 3), bool)), ValueError,
     r"MultiHeadAttention: padding_mask of shape \(2, 3\), expected \(2, 4\)"),
    # nn/functional.py
    ("dropout p", lambda: F.dropout(x23(), 1.5), ValueError,
     r"dropout: p must be in \[0, 1\], got 1.5"),
    ("label smoothing", lambda: F.cross_entropy(x23(), [0, 1], label_smoothing=-0.1),
     ValueError, r"cross_entropy: label_smoothing must be in \[0, 1\], got -0.1"),
    ("loss reduction", lambda: F.mse_loss(x23(), 0.0, reduction="avg"), ValueError,
     "mse_loss: reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    ("attention mask dtype", lambda: F.scaled_dot_product_attention(
        x23(), x23(), x23(), attn_mask=np.ones((2, 2))), TypeError,
     r"attention: attn_mask must be bool \(True = attend\), got float64"),
    # nn/init.py
    ("fans of a vector", lambda: nn.init.xavier_uniform_(tt.ones(3)), ValueError,
     r"fan in/out need a tensor with at least 2 dims, got shape \(3,\)"),
    ("kaiming mode", lambda: nn.init.kaiming_uniform_(x23(), mode="fan_avg"), ValueError,
     "mode must be 'fan_in' or 'fan_out', got 'fan_avg'"),
    ("kaiming nonlinearity", lambda: nn.init.kaiming_normal_(x23(), nonlinearity="swish"),
     ValueError, "unknown nonlinearity 'swish'"),
    # nn/layers.py
    ("Linear sizes", lambda: nn.Linear(-1, 3), ValueError,
     "Linear: sizes must be >= 0, got -1, 3"),
    ("Linear input", lambda: nn.Linear(4, 3)(tt.ones(2, 5)), ValueError,
     r"Linear\(4, 3\): input of shape \(2, 5\) does not end in 4"),
    ("LayerNorm input", lambda: nn.LayerNorm(4)(tt.ones(2, 5)), ValueError,
     r"LayerNorm\(4\): input of shape \(2, 5\) does not end in 4"),
    ("Dropout p", lambda: nn.Dropout(-0.5), ValueError,
     r"Dropout: p must be in \[0, 1\], got -0.5"),
    # nn/module.py
    ("Parameter int", lambda: nn.Parameter(np.arange(3)), TypeError,
     "Parameter: needs float data, got int64"),
    ("assign before init", _NoInit, AttributeError,
     r"_NoInit: call super\(\).__init__\(\) before assigning attributes"),
    ("no such attribute", lambda: nn.Linear(2, 2).nope, AttributeError,
     "'Linear' has no attribute 'nope'"),
    ("buffer not tensor", lambda: nn.Linear(2, 2).register_buffer("b", np.ones(2)), TypeError,
     "register_buffer: b must be a Tensor or None"),
    ("no forward", lambda: _Bare()(x23()), NotImplementedError,
     r"_Bare does not define forward\(\)"),
    ("state keys", lambda: nn.Linear(4, 3).load_state_dict({"weight": np.zeros((3, 4)),
                                                             "extra": np.zeros(1)}),
     KeyError, r"load_state_dict for Linear: missing keys: \['bias'\]; unexpected keys: "
     r"\['extra'\]"),
    ("state shape", lambda: nn.Linear(4, 3).load_state_dict(_linear_state((2, 2))), ValueError,
     r"load_state_dict: weight has shape \(2, 2\) in the state but \(3, 4\) in the module"),
    ("Sequential item", lambda: nn.Sequential(nn.Linear(2, 2), 3), TypeError,
     "Sequential: item 1 is a int, not a Module"),
    ("ModuleList item", lambda: nn.ModuleList().append(3), TypeError,
     "ModuleList: expected a Module, got int"),
    # nn/positional.py
    ("positions beyond max_len", lambda: nn.RotaryEmbedding(4, 3)(tt.ones(1, 4, 4)),
     ValueError, "RotaryEmbedding: positions up to 4 requested, but max_len is 3"),
    ("rotary odd", lambda: nn.RotaryEmbedding(5, 8), ValueError,
     "RotaryEmbedding: head_dim must be even, got 5"),
    # nn/transformer.py
    ("block norm", lambda: nn.TransformerBlock(8, 2, norm="mid"), ValueError,
     "TransformerBlock: norm must be 'pre' or 'post', got 'mid'"),
    # nn/parallel.py (a world of one process: no MPI needed)
    ("ddp not a module", lambda: _in_group(lambda: DistributedDataParallel(lambda x: x)),
     TypeError, "DistributedDataParallel wraps a Module, got function"),
    ("ddp bucket", lambda: _in_group(lambda: DistributedDataParallel(nn.Linear(2, 2),
                                                                     bucket_cap_mb=0)),
     ValueError, "bucket_cap_mb must be > 0, got 0"),
    ("ddp no group", lambda: _without_group(lambda: DistributedDataParallel(nn.Linear(2, 2))),
     RuntimeError, r"call tinytape.distributed.init_process_group\(\) first"),
]


@pytest.mark.parametrize("call,exc,match", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_error_message(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


#: raise statements no input can reach through the public API, and why
UNREACHABLE = {
    ("ops/arithmetic.py", "raise"): "re-raises, unchanged, an error other than a broadcast "
                                    "one from an op's forward (none is known)",
    ("nn/parallel.py", "raise RuntimeError"): "besides the missing process group (a case "
                                              "here), a backward that left parameters "
                                              "unaveraged: needs two processes, tested under "
                                              "mpiexec in tests/test_distributed.py",
}


def _raise_sites() -> dict[tuple[str, int], str]:
    sites = {}
    for folder in ("ops", "nn"):
        for path in sorted((PACKAGE / folder).glob("*.py")):
            source = path.read_text()
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Raise):
                    text = ast.get_source_segment(source, node).split("(")[0]
                    sites[(str(path), node.lineno)] = f"{folder}/{path.name}", text
    return sites


def test_every_raise_in_ops_and_nn_has_a_case():
    if any(m.startswith("tinytape.ops.") for m in _compiled.compiled_modules()):
        # Line tracing sees Python frames only: the compiled op files run this test
        # again in a process that imports their sources.
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"{__file__}::test_every_raise_in_ops_and_nn_has_a_case"],
            env={**os.environ, "TINYTAPE_PURE_PYTHON": "1"}, cwd=Path(__file__).parent.parent,
            capture_output=True, text=True, check=False,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
        assert "1 passed" in out.stdout, out.stdout[-3000:]
        return
    sites = _raise_sites()
    files = {path for path, _ in sites}
    reached = set()

    def tracer(frame, event, arg):
        if frame.f_code.co_filename not in files:
            return None

        def local(frame, event, arg):
            if event == "line":
                reached.add((frame.f_code.co_filename, frame.f_lineno))
            return local
        return local

    previous = sys.gettrace()  # a coverage tool's, say: put back afterwards
    sys.settrace(tracer)
    try:
        for _, call, exc, _ in CASES:
            try:
                call()
            except exc:
                pass
    finally:
        sys.settrace(previous)
    missing = [f"{where}:{line} {text}" for (path, line), (where, text) in sorted(sites.items())
               if (path, line) not in reached and (where, text) not in UNREACHABLE]
    assert not missing, "raise statements without an error case in tests/test_errors.py:\n" + \
        "\n".join(missing)
    assert len(sites) >= 75, f"only {len(sites)} raise statements found: is the scan broken?"
