"""tinytape.experiments: the experiments reproducing the lecture, one module each, on one
shared protocol (protocol.py: intervals over seeds, targets with verdicts, the results.json
schema, run folders, optimizer/schedule construction, tables).

Each experiment module has a Config dataclass that validates itself and a `run(config,
out_dir)` that writes results.json in the shared schema; the CLI modules only parse
arguments into a Config, call run and print.
"""

from .protocol import (
    SCHEMA_VERSION,
    VERDICTS,
    Interval,
    Protocol,
    RunMismatch,
    Target,
    make_optimizer,
    make_schedule,
    markdown_table,
    mean_interval,
    paired_interval,
    prepare_run_dir,
    read_results,
    render_results,
    target,
    targets_table,
    warmup_steps,
    write_results,
)

__all__ = [
    "SCHEMA_VERSION",
    "VERDICTS",
    "Interval",
    "Protocol",
    "RunMismatch",
    "Target",
    "make_optimizer",
    "make_schedule",
    "markdown_table",
    "mean_interval",
    "paired_interval",
    "prepare_run_dir",
    "read_results",
    "render_results",
    "target",
    "targets_table",
    "warmup_steps",
    "write_results",
]
