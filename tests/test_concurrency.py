"""Kernels called from several Python threads at once.

The bindings release the GIL around every C call (the elementwise kernels and the SGD
step from 8,192 values on, tinytape/_C.pyx), so Python threads really run kernels
at the same time (each with its own OpenMP team). Their results must be bit-equal to the
same calls made one after another, and changing the thread count while another thread is
inside a kernel must be safe: that call finishes with the count it started with (so its
result is bit-equal to a serial call at the old or at the new count), later calls use the
new one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from conftest import kernel_threads

import tinytape
from tinytape import backend

pytestmark = pytest.mark.skipif(
    "c" not in backend.available(), reason="the C extension is not built"
)

N_THREADS = 4
REPEATS = 6


def _calls(rng: np.random.Generator) -> dict[str, Callable[[], list[np.ndarray]]]:
    """One closure per kernel, on inputs large enough to go multi-threaded (the GEMM over
    12 MFLOP, the row kernels over 1M values) plus a small GEMM, returning its outputs."""
    a = rng.standard_normal((300, 256)).astype(np.float32)
    b = rng.standard_normal((256, 200)).astype(np.float32)
    small = rng.standard_normal((7, 13))
    x = rng.standard_normal((1024, 1024)).astype(np.float32)
    dy = rng.standard_normal((1024, 1024)).astype(np.float32)
    gamma = rng.standard_normal(1024).astype(np.float32)
    targets = rng.integers(0, 1024, 1024)
    qkv = rng.standard_normal((4, 64, 3 * 128))
    g_out = rng.standard_normal((4, 64, 128))
    p0 = rng.standard_normal(200_000).astype(np.float32)
    g0 = rng.standard_normal(200_000).astype(np.float32)

    def layer_norm():
        y, mean, rstd = backend.layer_norm(x, gamma, None)
        return [y, *backend.layer_norm_backward(dy, x, gamma, mean, rstd)]

    def cross_entropy():
        loss, lse = backend.cross_entropy(x, targets)
        return [loss, lse, backend.cross_entropy_backward(x, targets, lse)]

    def attention():
        out, w = backend.attention(qkv, 4, causal=True)
        return [out, w, backend.attention_backward(qkv, 4, None, w, g_out, causal=True)]

    def adam():
        p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        for step in (1, 2):
            backend.adam_step(p, g0, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=step)
        return [p, m, v]

    def relu():
        y, mask = backend.relu_with_mask(x)
        small_y, small_mask = backend.relu_with_mask(small)  # small: the GIL is kept
        return [y, mask, backend.relu_backward(mask, dy), small_y, small_mask]

    def sgd():
        p, buf = np.repeat(p0, 5), None  # 1M values: over the split size
        for _ in (1, 2):
            buf = backend.sgd_step(p, np.repeat(g0, 5), buf, lr=0.1, momentum=0.9, nesterov=True)
        return [p, buf]

    return {
        "gemm": lambda: [
            backend.gemm(a, b),
            backend.gemm(b, a, trans_a=True, trans_b=True, alpha=0.5),
        ],
        "gemm_small": lambda: [backend.gemm(small, small, trans_b=True)],
        "softmax": lambda: [backend.softmax(x), backend.softmax_backward(backend.softmax(x), dy)],
        "log_softmax": lambda: [backend.log_softmax(x)],
        "cross_entropy": cross_entropy,
        "layer_norm": layer_norm,
        "gelu": lambda: [backend.gelu(x), backend.gelu_backward(x, dy)],
        "sigmoid_tanh": lambda: [
            backend.sigmoid(x),
            backend.sigmoid_backward(x, dy),
            backend.tanh_backward(x, dy),
            backend.sigmoid(small),  # small: the GIL is kept
        ],
        "attention": attention,
        "adam": adam,
        "relu": relu,
        "sgd": sgd,
        "add_sub_mul_div": lambda: [
            backend.add(x, dy),
            backend.sub(x, np.asarray(np.float32(0.5))),
            backend.mul(np.asarray(np.float32(3.0)), dy),
            backend.div(dy, x),
            backend.add(small, small),  # small: the GIL is kept
        ],
    }


def _bits(outputs: list[np.ndarray]) -> list[bytes]:
    return [np.asarray(o).tobytes() for o in outputs]


@pytest.fixture
def threads2():
    with kernel_threads(2):
        yield


def test_parallel_calls_bit_equal_to_serial(threads2):
    calls = _calls(np.random.default_rng(0))
    serial = {name: _bits(f()) for name, f in calls.items()}
    start = threading.Barrier(N_THREADS)
    mismatches: list[str] = []
    errors: list[BaseException] = []

    def worker(tid: int) -> None:
        try:
            start.wait()
            names = list(calls)
            for r in range(REPEATS):  # each thread in its own order, so different kernels
                for name in names[tid + r :] + names[: tid + r]:  # overlap
                    if _bits(calls[name]()) != serial[name]:
                        mismatches.append(f"thread {tid}, repeat {r}: {name}")
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(N_THREADS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    assert not mismatches, mismatches


def test_kernels_release_the_gil():
    """While one thread is inside a long GEMM, another thread keeps running Python: the
    longest pause between its steps is far shorter than the GEMM."""
    a = np.random.default_rng(1).standard_normal((1500, 1500))
    saved = tinytape.get_num_threads()
    tinytape.set_num_threads(1)
    try:
        inside = threading.Event()
        done = threading.Event()
        span: list[float] = []

        def product():
            inside.set()
            t0 = time.perf_counter()
            backend.gemm(a, a)
            span.append(time.perf_counter() - t0)
            done.set()

        worker = threading.Thread(target=product)
        worker.start()
        inside.wait()
        last, longest = time.perf_counter(), 0.0
        while not done.is_set():
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now
        worker.join()
    finally:
        tinytape.set_num_threads(saved)
    assert span[0] > 0.05, f"the GEMM took only {span[0]:.3f} s: too short to tell"
    assert longest < 0.5 * span[0], (
        f"the main thread stalled {longest:.3f} s during a {span[0]:.3f} s GEMM: the GIL was held"
    )


def test_set_num_threads_during_calls():
    """One thread switches the thread count between 1 and 2 as fast as it can while others
    run kernels whose bits depend on the count: every result is the serial result at 1 or
    at 2 threads, nothing crashes, and the count ends where it was set."""
    calls = _calls(np.random.default_rng(2))
    picked = {k: calls[k] for k in ("layer_norm", "cross_entropy", "gemm", "attention")}
    saved = tinytape.get_num_threads()
    serial = {}
    for n in (1, 2):
        tinytape.set_num_threads(n)
        serial[n] = {name: _bits(f()) for name, f in picked.items()}
    stop = threading.Event()
    bad: list[str] = []
    errors: list[BaseException] = []
    switches = 0

    def switcher():
        nonlocal switches
        while not stop.is_set():
            tinytape.set_num_threads(1 + switches % 2)
            switches += 1
            time.sleep(0.0005)

    def worker(tid: int):
        try:
            for r in range(REPEATS):
                for name, f in picked.items():
                    got = _bits(f())
                    if got not in (serial[1][name], serial[2][name]):
                        bad.append(f"thread {tid}, repeat {r}: {name}")
        except BaseException as e:
            errors.append(e)

    try:
        sw = threading.Thread(target=switcher)
        sw.start()
        pool = [threading.Thread(target=worker, args=(t,)) for t in range(2)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        stop.set()
        sw.join()
        tinytape.set_num_threads(2)
        assert tinytape.get_num_threads() == 2
    finally:
        tinytape.set_num_threads(saved)
    assert not errors, errors
    assert not bad, bad
    assert switches > 10
