"""The shared numpy softmax and log-softmax against a direct computation and torch."""

import numpy as np
import pytest

from tinytape.numeric import log_softmax, softmax


def test_matches_the_definition_on_moderate_values():
    a = np.random.default_rng(0).normal(0, 3, (4, 7))
    want = np.log(np.exp(a) / np.exp(a).sum(-1, keepdims=True))
    np.testing.assert_allclose(log_softmax(a), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(softmax(a, axis=0).sum(axis=0), 1.0, rtol=1e-12)


def test_extreme_values_do_not_overflow():
    a = np.array([[1000.0, 1000.0, -1000.0], [-np.inf, 0.0, 0.0], [-1e308, 1e308, 0.0]])
    out = log_softmax(a)
    np.testing.assert_allclose(out[0], [np.log(0.5), np.log(0.5), -2000.0 - np.log(2.0)])
    np.testing.assert_allclose(out[1], [-np.inf, np.log(0.5), np.log(0.5)])
    np.testing.assert_array_equal(out[2], [-np.inf, 0.0, -1e308])


def test_against_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(1).normal(0, 10, (3, 5, 6))
    for axis in (0, 1, -1):
        want = torch.log_softmax(torch.from_numpy(a), dim=axis).numpy()
        np.testing.assert_allclose(log_softmax(a, axis), want, rtol=1e-12, atol=1e-12)
