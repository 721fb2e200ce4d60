"""Random streams per rank: the same seed must not give every rank the same dropout masks.

Data order is drawn from a generator seeded alike on all ranks (they must agree on the
global batch); noise (dropout masks, corruption) must differ between ranks, or the ranks'
shards would see correlated noise. `seed_rank_generators` derives every such stream from
(seed, rank, step): deterministic, and well-defined when a run resumes at another world size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import creation
from ..checkpoint import module_generators

_TAG = 0x5EED  # keeps these streams apart from other uses of the same seed


def seed_rank_generators(model: Any, seed: int, rank: int, step: int = 0) -> np.random.Generator:
    """Reseed, in place, the generators the model's modules hold (dropout) and tinytape's
    default generator, from (seed, rank, step); return a new generator for other noise."""

    def stream(k: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(seed, spawn_key=(_TAG, rank, step, k))

    gens = [g for _, g in sorted(module_generators(model).items())]
    gens.append(creation._generator(None))
    for k, g in enumerate(gens):
        g.bit_generator.state = type(g.bit_generator)(stream(k)).state
    return np.random.default_rng(stream(len(gens)))
