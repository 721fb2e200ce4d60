"""Data-parallel training over MPI, with PyTorch's names (torch.distributed).

    import tinytape.distributed as dist
    dist.init_process_group()                 # under mpiexec -n N; a group of one without
    model = tinytape.nn.parallel.DistributedDataParallel(model)
    ...                                       # each rank trains on its shard of the batch

Install with `pip install "tinytape[mpi]"` (mpi4py and the MPICH wheel, whose mpiexec lands
in the virtual environment), run with `mpiexec -n 2 python train.py`. See
docs/distributed.md.
"""

from .process_group import (
    ProcessGroup,
    ReduceOp,
    Work,
    all_gather,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
    check_same_on_all_ranks,
    destroy_process_group,
    get_rank,
    get_world_size,
    group_of_one,
    init_process_group,
    is_available,
    is_initialized,
    launcher_world_size,
    on_rank_zero,
)
from .seeding import seed_rank_generators
from .sharding import (
    DistributedSampler,
    gather_runs,
    run_in_rounds,
    shard_batch,
    shard_range,
    shard_runs,
)

__all__ = [
    "DistributedSampler",
    "ProcessGroup",
    "ReduceOp",
    "Work",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "check_same_on_all_ranks",
    "destroy_process_group",
    "gather_runs",
    "get_rank",
    "get_world_size",
    "group_of_one",
    "init_process_group",
    "is_available",
    "is_initialized",
    "launcher_world_size",
    "on_rank_zero",
    "run_in_rounds",
    "seed_rank_generators",
    "shard_batch",
    "shard_range",
    "shard_runs",
]
