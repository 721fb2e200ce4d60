"""The tensor's slots (set in one place, by every way of making a tensor), the engine's
roots (sent by the same loop as a node's gradients) and tinytape/tensor.pyi (in sync)."""

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tinytape as tt
from tinytape.autograd.engine import run_backward
from tinytape.tensor import Tensor

ROOT = Path(__file__).resolve().parent.parent
SLOTS = ("data", "grad", "_node", "_version", "_retains_grad", "requires_grad")


def _slots(t):
    return {name: getattr(t, name) for name in SLOTS}  # AttributeError if one is unset


def test_every_way_of_making_a_tensor_sets_every_slot():
    x = tt.tensor([1.0, -2.0, 3.0], requires_grad=True)
    seen = {}

    class Square(tt.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_output()
            return a.data * a.data

        @staticmethod
        def backward(ctx, g):
            seen["output"] = ctx.output
            return (g * 2.0 * ctx.output.sqrt(),)

    made = {
        "Tensor()": Tensor([1.0]),
        "_wrap": Tensor._wrap(np.ones(2)),
        "recorded": x * 2.0,
        "view": x.reshape(3, 1),
        "detach": x.detach(),
    }
    with tt.no_grad():
        made["fast path"] = x * 2.0
        made["unrecorded apply"] = x.sum()
    y = Square.apply(x)
    made["custom op"] = y
    y.sum().backward()
    made["ctx.output"] = seen["output"]
    for name, t in made.items():
        slots = _slots(t)
        assert slots["grad"] is None and slots["_retains_grad"] is False, name
        recorded = name in ("recorded", "view", "custom op", "ctx.output")
        assert slots["requires_grad"] is recorded and (slots["_node"] is not None) is recorded
    # views and detach share the version counter of their base; other tensors start at [0]
    assert made["view"]._version is x._version and made["detach"]._version is x._version
    assert made["recorded"]._version == [0] and made["recorded"]._version is not x._version
    assert made["ctx.output"]._node is y._node and made["ctx.output"]._version is y._version
    np.testing.assert_array_equal(made["ctx.output"].numpy(), [1.0, 4.0, 9.0])
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0, 6.0])  # 2 |x|, from sqrt(y)


def test_a_hooked_leaf_given_as_a_root_gets_its_hook_once_with_the_full_gradient():
    w = tt.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    loss = (w * w).sum()
    run_backward([loss, w], [None, np.array([10.0, 20.0])], retain_graph=False, create_graph=False)
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [12.0, 24.0])  # 2 w from loss, plus the root's


def test_roots_sharing_a_node_and_a_leaf_sum_their_gradients():
    x = tt.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    run_backward(
        [y, y, x],
        [np.ones(2), np.full(2, 2.0), np.full(2, 5.0)],
        retain_graph=False,
        create_graph=False,
    )
    np.testing.assert_array_equal(x.grad.numpy(), [3.0 * 3 + 5, 3.0 * 3 + 5])
    with pytest.raises(RuntimeError, match="does not require grad"):
        run_backward([tt.tensor([1.0])], [None], retain_graph=False, create_graph=False)


def _stub_tool():
    spec = importlib.util.spec_from_file_location("tensor_stub", ROOT / "tools" / "tensor_stub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tensor_stub_is_in_sync_with_tensor_py_and_the_bound_ops():
    tool = _stub_tool()
    assert tool.render() == (ROOT / "tinytape" / "tensor.pyi").read_text(), (
        "tinytape/tensor.pyi is out of date: run python tools/tensor_stub.py"
    )


def test_tensor_stub_declares_every_attribute_of_the_runtime_class():
    stub = ast.parse((ROOT / "tinytape" / "tensor.pyi").read_text())
    cls = next(n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "Tensor")
    declared = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef):
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            declared.add(node.target.id)
        elif isinstance(node, ast.Assign):
            declared.update(t.id for t in node.targets)
    implicit = {
        "__module__",
        "__doc__",
        "__annotations__",
        "__weakref__",
        "__qualname__",
        "__firstlineno__",
        "__static_attributes__",
        "__annotate__",
    }
    assert set(vars(Tensor)) - implicit - declared == set()
    from tinytape.ops import tensor_methods

    for name, fn in tensor_methods().items():
        assert name in declared
        if fn.__name__ != "<lambda>":  # the same op is bound
            assert getattr(Tensor, name) is fn
