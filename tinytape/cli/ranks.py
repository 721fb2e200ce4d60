"""Commands under `mpiexec -n N`: every rank runs the command, rank 0 alone prints.

A command that trains data-parallel or spreads independent runs over the ranks calls
`on_every_rank` around its work; without a launcher it is a group of one and nothing
changes. Progress bars and files are the experiments' business (rank 0 alone, too).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable


def on_every_rank(command: Callable[[], int]) -> int:
    """Join the launcher's processes (init_process_group), then run command() on this
    rank, its standard output discarded unless this is rank 0."""
    from ..distributed import init_process_group

    if init_process_group().rank == 0:
        return command()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        return command()
