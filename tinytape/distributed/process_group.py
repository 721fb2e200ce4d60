"""The process group: which process this is, how many there are, and collectives over MPI.

Under `mpiexec -n N` (or any MPI launcher), init_process_group() joins the N processes
through mpi4py; otherwise it makes a group of one, where every collective is the identity,
so the same script runs alone or data-parallel. The names and semantics are PyTorch's
(torch.distributed), so code ports over: collectives work in place on a Tensor's data or on
a numpy array, and async_op=True returns a Work to wait() on.

A process that stops early must not leave the others waiting forever in a collective:
- an uncaught exception: init_process_group() installs an exception hook that prints which
  rank failed and aborts the whole job (MPI_Abort);
- killed by a signal: the launcher (mpiexec) sees it and ends the others;
- any other exit (sys.exit, the end of the script on one rank only): at exit, the process
  sends an exit notice to every other rank, which every wait of a collective here looks
  for; a rank that finds one while waiting raises, and so aborts the job. At a normal end,
  all ranks exit together (a barrier) and the notices are simply collected.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, Union

import numpy as np

from ..tensor import Tensor

Buffer = Union[Tensor, np.ndarray]
T = TypeVar("T")

#: environment variables by which MPI launchers announce the number of processes
LAUNCHER_SIZE_VARIABLES = (
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "MPI_LOCALNRANKS",
)
INSTALL_HINT = 'pip install "tinytape[mpi]" (mpi4py and an MPI with its mpiexec)'
EXIT_TAG = 0x7E  # the message tag of exit notices
SPIN_POLLS = 200  # a wait polls this many times (about 0.2 ms) before sleeping between polls
WAIT_SLEEP_S = 5e-5


class ReduceOp:
    """Reduction operations of all_reduce (PyTorch's names)."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


_OPS = (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX)


class Work:
    """A collective in flight (async_op=True): wait() blocks until it is done and the result
    is in place; is_completed() tests without blocking."""

    def __init__(self, request: Any = None, finish: Any = None, what: str = "") -> None:
        self._request, self._finish, self._done = request, finish, request is None
        self._what = what

    def is_completed(self) -> bool:
        if not self._done and self._request.Test():
            self._complete()
        return self._done

    def wait(self) -> bool:
        if not self._done:
            _wait(self._request, self._what)
            self._complete()
        return True

    def _complete(self) -> None:
        self._done = True
        if self._finish is not None:
            self._finish()
            self._finish = None


class ProcessGroup:
    """A group of processes: rank (0..size-1) and size; comm is the mpi4py communicator
    (None for the group of one)."""

    def __init__(self, comm: Any = None) -> None:
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1


_group: ProcessGroup | None = None
_failure_handling = False  # the exception hook and the exit notice are installed


def launcher_world_size() -> int | None:
    """The number of processes an MPI launcher started (from its environment), or None when
    this process was not started by one."""
    for name in LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name)
        if value and value.isdigit():
            return int(value)
    return None


def is_available() -> bool:
    """True when mpi4py can be imported (the `mpi` extra is installed)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def init_process_group(backend: str = "mpi") -> ProcessGroup:
    """Join the processes started by the MPI launcher (a group of one when there is none).

    Calling it again returns the group already made. Raises RuntimeError when a launcher
    started several processes but mpi4py is missing (each would otherwise train alone).
    """
    global _group
    if backend != "mpi":
        raise ValueError(f"init_process_group: the only backend is 'mpi', got {backend!r}")
    if _group is not None:
        return _group
    size = launcher_world_size()
    if size is None or size == 1:
        _group = ProcessGroup(None)
        return _group
    try:
        from mpi4py import MPI
    except ImportError:
        raise RuntimeError(
            f"this process was started by an MPI launcher with {size} "
            f"processes, but mpi4py is not installed: {INSTALL_HINT}"
        ) from None
    comm = MPI.COMM_WORLD
    _group = ProcessGroup(comm)
    global _failure_handling
    if _group.size > 1 and not _failure_handling:
        _install_abort_on_exception(comm)
        atexit.register(_exit_together, comm)
        _failure_handling = True
    return _group


def destroy_process_group() -> None:
    """Forget the group (MPI itself is finalized when the process exits)."""
    global _group
    _group = None


def is_initialized() -> bool:
    return _group is not None


@contextlib.contextmanager
def group_of_one() -> Iterator[ProcessGroup]:
    """Within it, this process is a group of one (rank 0 of 1, collectives the identity);
    the real group is back on exit. For the independent runs `shard_runs` deals out: a
    Trainer made inside trains alone, without DDP and without waiting for other ranks.
    Code inside sees rank 0 on every rank, so it must not write shared files."""
    global _group
    saved = _group
    _group = ProcessGroup(None)
    try:
        yield _group
    finally:
        _group = saved


def _default_group() -> ProcessGroup:
    if _group is None:
        raise RuntimeError(
            "tinytape.distributed: call init_process_group() first (it joins "
            "the processes of mpiexec, or makes a group of one without it)"
        )
    return _group


def get_rank() -> int:
    """This process's rank, 0 to world size - 1 (0 when no group was made)."""
    return _group.rank if _group is not None else 0


def get_world_size() -> int:
    """The number of processes (1 when no group was made)."""
    return _group.size if _group is not None else 1


def _install_abort_on_exception(comm: Any) -> None:
    """On an uncaught exception: print it with this rank, then abort every process."""
    previous = sys.excepthook

    def abort(exc_type: type, exc: BaseException, tb: Any) -> None:
        try:
            traceback.print_exception(exc_type, exc, tb)
            sys.stderr.write(
                f"tinytape.distributed: rank {comm.Get_rank()} of "
                f"{comm.Get_size()} stopped with {exc_type.__name__}: {exc}; "
                "aborting all ranks\n"
            )
            sys.stderr.flush()
            time.sleep(0.5)  # the launcher forwards this output before the abort ends it
        finally:
            if exc_type is KeyboardInterrupt:
                previous(exc_type, exc, tb)
            comm.Abort(1)

    sys.excepthook = abort


def _exit_together(comm: Any) -> None:
    """At exit: tell the other ranks, then wait until they exit too (so the notices of a
    normal end are collected, not taken for a failure)."""
    from mpi4py import MPI

    note = np.array([comm.Get_rank()], dtype=np.int64)
    sends = [
        comm.Isend(note, dest=r, tag=EXIT_TAG)
        for r in range(comm.Get_size())
        if r != comm.Get_rank()
    ]
    barrier = comm.Ibarrier()
    while not barrier.Test():  # others may still work a while (rank 0 writes results)
        time.sleep(1e-3)
    got = np.empty(1, dtype=np.int64)
    for r in range(comm.Get_size()):
        if r != comm.Get_rank():
            comm.Recv(got, source=r, tag=EXIT_TAG)
    MPI.Request.Waitall(sends)


def _wait(request: Any, what: str) -> None:
    """Wait for a non-blocking MPI operation; raise if another rank exits meanwhile."""
    group = _default_group()
    comm = group.comm
    from mpi4py import MPI

    status = MPI.Status()
    polls = 0
    while not request.Test():
        if comm.Iprobe(source=MPI.ANY_SOURCE, tag=EXIT_TAG, status=status):
            raise RuntimeError(
                f"rank {status.Get_source()} exited "
                f"while rank {group.rank} waited in {what or 'a collective'}; "
                "stopping"
            )
        polls += 1
        if polls > SPIN_POLLS:
            # Still waiting (usually for a slower rank): yield the core rather than spin,
            # so that rank (or other work) sharing it runs; MPI progresses at each Test.
            time.sleep(WAIT_SLEEP_S)


# ---------------------------------------------------------------------------- collectives


def _array(buf: Buffer, op: str) -> np.ndarray:
    data = buf.data if isinstance(buf, Tensor) else buf
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{op}: expected a Tensor or a numpy array, got {type(buf).__name__}")
    if not data.flags.writeable:
        raise ValueError(f"{op}: the array of shape {data.shape} is read-only")
    return data


def _contiguous(data: np.ndarray) -> tuple[np.ndarray, bool]:
    """data itself when C-contiguous, else a contiguous copy (to be copied back)."""
    if data.flags.c_contiguous:
        return data, False
    return np.ascontiguousarray(data), True


def _bump(buf: Buffer) -> None:
    if isinstance(buf, Tensor):
        buf._version[0] += 1


def _mpi_op(op: str) -> Any:
    from mpi4py import MPI

    return {
        ReduceOp.SUM: MPI.SUM,
        ReduceOp.AVG: MPI.SUM,
        ReduceOp.PRODUCT: MPI.PROD,
        ReduceOp.MIN: MPI.MIN,
        ReduceOp.MAX: MPI.MAX,
    }[op]


def all_reduce(tensor: Buffer, op: str = ReduceOp.SUM, async_op: bool = False) -> Work | None:
    """Reduce `tensor` over all processes, in place: every process ends with the result
    (AVG: the mean). With async_op=True, returns a Work; the result is in place after wait()."""
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {_OPS}, got {op!r}")
    group = _default_group()
    data = _array(tensor, "all_reduce")
    if group.comm is None:
        return Work() if async_op else None
    if op == ReduceOp.AVG and data.dtype.kind not in "fc":
        raise TypeError(f"all_reduce: AVG needs a float array, got {data.dtype}")
    buf, copied = _contiguous(data)
    from mpi4py import MPI

    def finish() -> None:
        if op == ReduceOp.AVG:
            buf[...] /= group.size
        if copied:
            data[...] = buf
        _bump(tensor)

    work = Work(group.comm.Iallreduce(MPI.IN_PLACE, buf, _mpi_op(op)), finish, "all_reduce")
    if async_op:
        return work
    work.wait()
    return None


def broadcast(tensor: Buffer, src: int = 0, async_op: bool = False) -> Work | None:
    """Copy `tensor` of process `src` into `tensor` of every process, in place."""
    group = _default_group()
    if not 0 <= src < group.size:
        raise ValueError(f"broadcast: src {src} is not a rank of a group of {group.size}")
    data = _array(tensor, "broadcast")
    if group.comm is None:
        return Work() if async_op else None
    buf, copied = _contiguous(data)

    def finish() -> None:
        if copied:
            data[...] = buf
        _bump(tensor)

    work = Work(group.comm.Ibcast(buf, root=src), finish, "broadcast")
    if async_op:
        return work
    work.wait()
    return None


def all_gather(tensor_list: list[Buffer], tensor: Buffer, async_op: bool = False) -> Work | None:
    """Fill tensor_list[r] with `tensor` of process r (every list entry has its shape)."""
    group = _default_group()
    data = _array(tensor, "all_gather")
    if len(tensor_list) != group.size:
        raise ValueError(
            f"all_gather: tensor_list has {len(tensor_list)} entries for a group of {group.size}"
        )
    outs = [_array(t, "all_gather") for t in tensor_list]
    for i, out in enumerate(outs):
        if out.shape != data.shape or out.dtype != data.dtype:
            raise ValueError(
                f"all_gather: tensor_list[{i}] is {out.dtype}{list(out.shape)}, "
                f"the tensor sent is {data.dtype}{list(data.shape)}"
            )
    send = np.ascontiguousarray(data)
    recv = np.empty((group.size, *data.shape), dtype=data.dtype)

    def finish() -> None:
        for t, out, part in zip(tensor_list, outs, recv):
            out[...] = part
            _bump(t)

    if group.comm is None:
        recv[0] = send
        finish()
        return Work() if async_op else None
    work = Work(group.comm.Iallgather(send, recv), finish, "all_gather")
    if async_op:
        return work
    work.wait()
    return None


def barrier() -> None:
    """Wait until every process has reached this call."""
    group = _default_group()
    if group.comm is not None:
        _wait(group.comm.Ibarrier(), "barrier")


def all_gather_object(object_list: list[Any], obj: Any) -> None:
    """Fill object_list (one entry per process) with `obj` of every process (pickled)."""
    group = _default_group()
    if len(object_list) != group.size:
        raise ValueError(
            f"all_gather_object: object_list has {len(object_list)} entries for "
            f"a group of {group.size}"
        )
    if group.comm is None:
        object_list[:] = [obj]
        return
    data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
    sizes = np.empty(group.size, dtype=np.int64)
    _wait(group.comm.Iallgather(np.array([data.size], dtype=np.int64), sizes), "all_gather_object")
    recv = np.empty(int(sizes.sum()), dtype=np.uint8)
    _wait(group.comm.Iallgatherv(data, (recv, sizes)), "all_gather_object")
    ends = np.cumsum(sizes)
    object_list[:] = [pickle.loads(recv[e - n : e].tobytes()) for n, e in zip(sizes, ends)]


def broadcast_object_list(object_list: list[Any], src: int = 0) -> None:
    """Replace object_list's entries with those of process `src` (pickled)."""
    group = _default_group()
    if not 0 <= src < group.size:
        raise ValueError(
            f"broadcast_object_list: src {src} is not a rank of a group of {group.size}"
        )
    if group.comm is None:
        return
    data = np.frombuffer(pickle.dumps(list(object_list)), dtype=np.uint8)
    size = np.array([data.size], dtype=np.int64)
    _wait(group.comm.Ibcast(size, root=src), "broadcast_object_list")
    buf = data.copy() if group.rank == src else np.empty(int(size[0]), dtype=np.uint8)
    _wait(group.comm.Ibcast(buf, root=src), "broadcast_object_list")
    object_list[:] = pickle.loads(buf.tobytes())


def on_rank_zero(fn: Callable[[], T]) -> T:
    """fn() run by rank 0 alone (file-system work, such as checking and clearing a run
    folder), its result sent to every rank; an exception it raises is raised on every
    rank, so all stop alike. In a group of one (or none), simply fn()."""
    if _group is None or _group.comm is None:
        return fn()
    if _group.rank == 0:
        try:
            result = fn()
        except Exception as e:
            broadcast_object_list([None, _picklable(e)], src=0)
            raise
        broadcast_object_list([result, None], src=0)
        return result
    outcome: list[Any] = [None, None]
    broadcast_object_list(outcome, src=0)
    if outcome[1] is not None:
        raise outcome[1]
    return outcome[0]


def _picklable(e: Exception) -> Exception:
    """e itself when it survives pickling, else a RuntimeError with its message."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")


def check_same_on_all_ranks(value: Any, what: str) -> None:
    """Raise on every rank, naming the ranks that differ, unless `value` (picklable, with ==)
    is the same on all of them: for settings that must agree (shapes, batch sizes)."""
    group = _default_group()
    if group.comm is None:
        return
    values: list[Any] = [None] * group.size
    all_gather_object(values, value)
    differ = [r for r, v in enumerate(values) if v != values[0]]
    if differ:
        raise RuntimeError(
            f"{what} differs between ranks: rank 0 has {values[0]!r}, "
            + ", ".join(f"rank {r} has {values[r]!r}" for r in differ)
        )
