"""The protocol every experiment shares: intervals over seeds, targets with verdicts, the
results.json schema, the run-folder resume check and the markdown tables (optimizer and
schedule construction live one layer down, in tinytape.optim.build, and are re-exported).

    diff = paired_interval(pretrained_acc, random_acc)       # one value per seed, paired
    t = target("pretrained - random", diff, bound=0.0)       # verdict "met" / "not met" / ...
    write_results(run_dir, "layerwise", config, protocol, metrics, [t])

An interval is a Student t interval of a mean over seeds (n values, n - 1 degrees of
freedom); a paired interval is that of the per-seed differences, so both arms must have
seen the same data per seed. The t quantile is computed here (bisection on the regularized
incomplete beta function) because scipy is not a dependency.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..optim.build import make_optimizer, make_schedule, warmup_steps

#: version of the results.json layout; read_results refuses any other
SCHEMA_VERSION = 1
VERDICTS = ("met", "not met", "inconclusive")
RESULTS_FILE = "results.json"
CONFIG_FILE = "config.json"


# ---------------------------------------------------------------------------- t quantile


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0) or not 0.0 <= x <= 1.0:
        raise ValueError(
            f"regularized_incomplete_beta: need a, b > 0 and 0 <= x <= 1, got a={a}, b={b}, x={x}"
        )
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df > 0 degrees of freedom."""
    if not df > 0:
        raise ValueError(f"t_cdf: degrees of freedom must be > 0, got {df}")
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p for Student's t with df degrees of freedom (bisection)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile: p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"t_quantile: degrees of freedom must be > 0, got {df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Interval:
    """A mean over n seeds with its confidence interval [lo, hi] and the sample standard
    deviation sd (ddof=1). With n < 2, sd, lo and hi are NaN (no interval from one value)."""

    mean: float
    lo: float
    hi: float
    sd: float
    n: int
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "ci95": [self.lo, self.hi],
            "sd": self.sd,
            "n": self.n,
            "confidence": self.confidence,
        }

    def format(self, digits: int = 3, scale: float = 1.0) -> str:
        """'0.812 [0.790, 0.834]' (values times scale; percentages with scale=100)."""
        m, lo, hi = (v * scale for v in (self.mean, self.lo, self.hi))
        if math.isnan(lo):
            return f"{m:.{digits}f}"
        return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _values(x: Iterable[float], what: str) -> np.ndarray:
    arr = np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{what}: expected a non-empty 1-d sequence of values (one per "
            f"seed), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: values must be finite, got {arr.tolist()}")
    return arr


#: the range a rate (an accuracy, a win rate) can take: the `within` of its interval
RATE = (0.0, 1.0)


def mean_interval(
    x: Iterable[float], confidence: float = 0.95, within: tuple[float, float] | None = None
) -> Interval:
    """The mean of x (one value per seed) with its Student t interval. `within`: the range
    the quantity can take (RATE for a rate); the interval is clipped to it, so that a few
    seeds never give a win rate an upper end above 1."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    arr = _values(x, "mean_interval")
    n = int(arr.size)
    mean = float(arr.mean())
    if n < 2:
        nan = float("nan")
        return Interval(mean, nan, nan, nan, n, confidence)
    sd = float(arr.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if within is not None:
        if not within[0] <= mean <= within[1]:
            raise ValueError(f"mean_interval: the mean {mean} lies outside within={within}")
        lo, hi = max(lo, within[0]), min(hi, within[1])
    return Interval(mean, lo, hi, sd, n, confidence)


def paired_interval(a: Iterable[float], b: Iterable[float], confidence: float = 0.95) -> Interval:
    """The mean of a - b over seeds (a[i] and b[i] from the same seed: the same data) with
    its paired t interval."""
    a_arr, b_arr = _values(a, "paired_interval a"), _values(b, "paired_interval b")
    if a_arr.shape != b_arr.shape:
        raise ValueError(
            f"paired_interval: the two arms need one value per seed each, got "
            f"{a_arr.size} and {b_arr.size} values"
        )
    return mean_interval(a_arr - b_arr, confidence)


def proportion_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """A proportion successes / n (e.g. an accuracy over n test items of one run) with its
    Wilson score interval: the uncertainty of the test sample, not of the seed."""
    if not (isinstance(n, (int, np.integer)) and n >= 1 and 0 <= successes <= n):
        raise ValueError(f"proportion_interval: need 0 <= successes <= n, n >= 1, got "
                         f"{successes} of {n}")
    p = successes / n
    z = -t_quantile((1.0 - confidence) / 2.0, 1e9)  # the normal quantile
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, centre - half, centre + half, math.sqrt(p * (1 - p)), int(n), confidence)


# ---------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """A claim checked against a bound: value is the estimate, ci95 its interval."""

    name: str
    value: float
    ci95: tuple[float, float]
    bound: float
    verdict: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(
                f"Target {self.name!r}: verdict must be one of {VERDICTS}, got {self.verdict!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "ci95": list(self.ci95),
            "bound": self.bound,
            "verdict": self.verdict,
        }


def verdict(lo: float, hi: float, bound: float, higher_is_better: bool = True) -> str:
    """ "met" when the whole interval [lo, hi] is on the good side of bound, "not met" when
    it is wholly on the wrong side, "inconclusive" when it straddles it (or is NaN)."""
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if not higher_is_better:
        lo, hi, bound = -hi, -lo, -bound
    if lo > bound:
        return "met"
    if hi < bound:
        return "not met"
    return "inconclusive"


def target(name: str, interval: Interval, bound: float, higher_is_better: bool = True) -> Target:
    """The Target for `interval` against `bound` (see `verdict`)."""
    return Target(
        name,
        interval.mean,
        (interval.lo, interval.hi),
        float(bound),
        verdict(interval.lo, interval.hi, bound, higher_is_better),
    )


# ---------------------------------------------------------------------------- protocol


def require_counts(config: Any, names: Iterable[str]) -> None:
    """Raise ValueError naming the first of the config's fields `names` (steps, sizes,
    counts) that is below 1."""
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")



@dataclass(frozen=True)
class Protocol:
    """How the numbers were obtained: split sizes, seeds, what was tuned on which split,
    and where choices were made (selection: "validation"; test is read once at the end)."""

    splits: dict[str, int]
    seeds: list[int]
    tuned: dict[str, str]
    selection: str = "validation"
    notes: str = ""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("Protocol: at least one seed")
        for what, split in self.tuned.items():
            if split == "test" or self.selection == "test":
                raise ValueError(
                    f"Protocol: {what!r} tuned on the test split; choices are "
                    f"made on validation and test is read once at the end"
                )
        if any(int(v) < 0 for v in self.splits.values()):
            raise ValueError(f"Protocol: split sizes must be >= 0, got {self.splits}")


# ---------------------------------------------------------------------------- results.json


def to_jsonable(value: Any) -> Any:
    """value with numpy scalars/arrays as Python numbers/lists, tuples as lists, dataclasses
    as dicts and NaN/inf as None (results.json is strict JSON)."""
    if is_dataclass(value) and not isinstance(value, type):
        value = value.to_dict() if hasattr(value, "to_dict") else asdict(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"results.json cannot hold a {type(value).__name__}: {value!r}")


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write data as JSON to path via a temporary file and os.replace (never half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(to_jsonable(data), f, indent=1, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def write_results(
    run_dir: str | os.PathLike,
    experiment: str,
    config: Mapping[str, Any],
    protocol: Protocol,
    metrics: Mapping[str, Any],
    targets: Sequence[Target],
    tables: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write run_dir/results.json (atomically) in the shared schema and return its path.

    tables (optional): name -> {"columns": [...], "rows": [[...], ...]}, the experiment's
    own result tables, rendered by `python -m tinytape report`.
    """
    data = {
        "schema": SCHEMA_VERSION,
        "experiment": experiment,
        "config": dict(config),
        "protocol": asdict(protocol),
        "metrics": dict(metrics),
        "targets": [t.to_dict() for t in targets],
        "tables": dict(tables or {}),
    }
    for name, table in data["tables"].items():
        _check_table(name, table, "write_results")
    return write_json_atomic(Path(run_dir) / RESULTS_FILE, data)


def _check_table(name: str, table: Any, where: str) -> None:
    if (
        not isinstance(table, Mapping)
        or set(table) - {"columns", "rows", "caption"}
        or "columns" not in table
        or "rows" not in table
    ):
        raise ValueError(
            f"{where}: table {name!r} must be {{'columns': [...], 'rows': "
            f"[[...]], 'caption'?}}, got {table!r:.200}"
        )
    width = len(table["columns"])
    for row in table["rows"]:
        if len(row) != width:
            raise ValueError(
                f"{where}: table {name!r} has {width} columns but a row of {len(row)}: {row!r}"
            )


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results.json (or the one in a run folder) and check it has the shared schema;
    a ValueError names the file and what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such results file") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: results schema {data.get('schema')!r}, expected "
            f"{SCHEMA_VERSION} (an old or foreign file: rerun the experiment)"
        )
    for key, kind in (
        ("experiment", str),
        ("config", dict),
        ("protocol", dict),
        ("metrics", dict),
        ("targets", list),
    ):
        if not isinstance(data.get(key), kind):
            raise ValueError(f"{path}: {key!r} missing or not a {kind.__name__}")
    missing = {"splits", "seeds", "tuned", "selection"} - set(data["protocol"])
    if missing:
        raise ValueError(f"{path}: protocol lacks {sorted(missing)}")
    for i, t in enumerate(data["targets"]):
        keys = {"name", "value", "ci95", "bound", "verdict"}
        if not isinstance(t, dict) or set(t) != keys:
            raise ValueError(
                f"{path}: target {i} must have exactly the keys {sorted(keys)}, got {t!r}"
            )
        if t["verdict"] not in VERDICTS:
            raise ValueError(
                f"{path}: target {t['name']!r} has verdict {t['verdict']!r}, not one of {VERDICTS}"
            )
        if not isinstance(t["ci95"], list) or len(t["ci95"]) != 2:
            raise ValueError(f"{path}: target {t['name']!r}: ci95 must be [lo, hi]")
    data.setdefault("tables", {})
    for name, table in data["tables"].items():
        _check_table(name, table, str(path))
    return data


# ---------------------------------------------------------------------------- run folders


class RunMismatch(ValueError):
    """A run folder holds a run made with other settings."""


def prepare_run_dir(
    run_dir: str | os.PathLike,
    config: Mapping[str, Any],
    *,
    resume: bool = True,
    outputs: Sequence[str] = (),
    on_mismatch: str = "raise",
) -> bool:
    """The one 'does this run folder match?' check. Returns True when the run in run_dir
    may be resumed (its config.json equals `config`), False when it starts fresh.

    Starting fresh (resume False, no config.json yet, or a mismatch with on_mismatch
    "restart") deletes the `outputs` files of an earlier run and writes config.json.
    A mismatch with on_mismatch "raise" raises RunMismatch (nothing is deleted).
    """
    if on_mismatch not in ("raise", "restart"):
        raise ValueError(f"on_mismatch must be 'raise' or 'restart', got {on_mismatch!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    wanted = to_jsonable(config)
    cfg_path = run_dir / CONFIG_FILE
    saved: Any = None
    if cfg_path.exists():
        try:
            saved = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            saved = None
    has_outputs = any((run_dir / name).exists() for name in outputs)
    if resume and saved == wanted:
        return has_outputs
    if resume and has_outputs and saved != wanted and on_mismatch == "raise":
        raise RunMismatch(
            f"{run_dir} holds a run with other settings; start over (no "
            f"resume) or use another folder"
        )
    for name in outputs:
        (run_dir / name).unlink(missing_ok=True)
    write_json_atomic(cfg_path, wanted)
    return False


# ---------------------------------------------------------------------------- tables


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    if value is None:
        return "n/a"
    return str(value).replace("|", "\\|")  # a | inside a cell would end it


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 3) -> str:
    """A GitHub markdown table; floats with `digits` decimals, None/NaN as n/a."""
    lines = [
        "| " + " | ".join(str(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


def targets_table(targets: Sequence[Target | Mapping[str, Any]], digits: int = 3) -> str:
    """The targets as a markdown table: name, value, 95% interval, bound, verdict."""
    rows = []
    for t in targets:
        d = t.to_dict() if isinstance(t, Target) else t
        lo, hi = (math.nan if v is None else v for v in d["ci95"])
        ci = "n/a" if math.isnan(lo) else f"[{lo:.{digits}f}, {hi:.{digits}f}]"
        rows.append([d["name"], d["value"], ci, d["bound"], d["verdict"]])
    return markdown_table(["target", "value", "95% interval", "bound", "verdict"], rows, digits)


def protocol_lines(protocol: Protocol | Mapping[str, Any]) -> list[str]:
    """The protocol in words: splits, seeds, what was tuned where, selection."""
    p = asdict(protocol) if isinstance(protocol, Protocol) else protocol
    seeds = p["seeds"]
    seed_text = (
        f"{len(seeds)} seeds ({seeds[0]}-{seeds[-1]})"
        if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 1
        else f"seeds {seeds}"
    )
    lines = [
        "splits: " + ", ".join(f"{k} {v}" for k, v in p["splits"].items()),
        seed_text + ("; choices made on " + p["selection"] if p["tuned"]
                     else "; nothing tuned (fixed settings)"),
    ]
    if p["tuned"]:
        lines.append("tuned: " + ", ".join(f"{k} (on {v})" for k, v in p["tuned"].items()))
    if p.get("notes"):
        lines.append(p["notes"])
    return lines


def render_results(
    results: Mapping[str, Any], parts: Sequence[str] | None = None, digits: int = 3
) -> str:
    """A results.json (as read by read_results) as markdown. parts: which pieces, in order:
    table names, "targets" and "protocol" (default: every table, the targets, the
    protocol); a name the results do not have is a ValueError listing the ones they do."""
    tables = results.get("tables", {})
    if parts is None:
        parts = [*tables, "targets", "protocol"]
    out: list[str] = []
    for part in parts:
        if part == "targets":
            if results["targets"]:
                out.append(targets_table(results["targets"], digits) + "\n")
        elif part == "protocol":
            text = "; ".join(protocol_lines(results["protocol"])).rstrip(".")
            out.append(f"Protocol: {text}.\n")
        elif part in tables:
            table = tables[part]
            if table.get("caption"):
                out.append(f"{table['caption'][:1].upper()}{table['caption'][1:]}:\n")
            out.append(markdown_table(table["columns"], table["rows"], digits) + "\n")
        else:
            raise ValueError(
                f"no part {part!r} in these results: tables {sorted(tables)}, 'targets', "
                f"'protocol'"
            )
    return "\n".join(out).rstrip() + "\n"


__all__ = [
    "SCHEMA_VERSION",
    "VERDICTS",
    "Interval",
    "mean_interval",
    "paired_interval",
    "proportion_interval",
    "t_quantile",
    "t_cdf",
    "regularized_incomplete_beta",
    "Target",
    "target",
    "verdict",
    "Protocol",
    "write_results",
    "read_results",
    "write_json_atomic",
    "to_jsonable",
    "RunMismatch",
    "prepare_run_dir",
    "warmup_steps",
    "make_optimizer",
    "make_schedule",
    "markdown_table",
    "targets_table",
    "protocol_lines",
    "render_results",
]
