"""The result store: a directory with one JSON file per finished cell, read by pandas.

Layout::

    <store>/spec.json              the SweepSpec that filled it (informational; rewritten per run)
    <store>/cells/<cell_id>.json   one finished cell: config, metrics, theory, seconds, versions

Every file is written atomically (``polysemy.io``: ``<path>.tmp-<pid>`` then ``os.replace``), so a reader, or a rerun
after SIGKILL, sees either the whole cell or none of it. A cell file's presence is the only record that
the cell is done: there is no index to get out of sync. Stray ``*.tmp-*`` files left by a killed
process are ignored and removed on the next run.

Atomic writes cannot protect against a file damaged later (a full disk, a hand edit, a copy cut short).
``check_cells`` therefore reads every cell back: a file that is not a JSON object whose ``cell_id``
matches its name is *corrupt*. The runner recomputes corrupt cells (overwriting the damaged file with a
warning), and ``rows``/``load_results`` skip them with a warning instead of failing.
"""

from __future__ import annotations

import json
import platform
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy
import pandas as pd
import torch

from .. import __version__
from ..errors import require
from ..io import to_jsonable, write_text_atomic
from ..outputs import check_output_dir

CELLS_DIR = "cells"


def check_store_dir(param: str, out: Path | str, what: str = "a sweep's result store") -> Path:
    """A store folder must be new, empty, or a result store already (never a folder of other files):
    ConfigError naming ``param`` otherwise. Creates nothing."""
    out = check_output_dir(param, out)
    if out.is_dir() and any(out.iterdir()):
        require((out / "spec.json").is_file() or (out / CELLS_DIR).is_dir(),
                f"{param} must be a new or empty folder or {what}, but {str(out)!r} holds "
                "other files (left as they are)")
    return out


@contextmanager
def store_or_temporary(store: Path | str | None) -> Iterator[Path]:
    """``store`` as a Path, or (``None``) a temporary store removed afterwards: a run that keeps nothing
    and resumes nothing, for callers that only want the result (``run_peers``, ``run_bench``)."""
    if store is not None:
        yield Path(store)
        return
    with tempfile.TemporaryDirectory(prefix="polysemy-store-") as tmp:
        yield Path(tmp)


def versions() -> dict[str, str]:
    """Versions recorded beside every result: polysemy, torch, numpy, python."""
    return {"polysemy": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


class ResultStore:
    """A sweep's results directory. Cheap to construct; creates the directory on first write."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.cells_dir = self.root / CELLS_DIR

    def cell_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.json"

    def done_ids(self) -> set[str]:
        """Ids of every finished cell (complete files only)."""
        if not self.cells_dir.is_dir():
            return set()
        return {p.name[:-len(".json")] for p in self.cells_dir.iterdir()
                if p.name.endswith(".json") and ".tmp-" not in p.name}

    def has(self, cell_id: str) -> bool:
        return self.cell_path(cell_id).is_file()

    def write_cell(self, row: dict[str, Any], *, sort_keys: bool = True) -> Path:
        """Store one finished cell (``row["cell_id"]`` names the file). ``sort_keys=False`` keeps the
        row's key order (reports built from the row then read as their evaluator wrote them)."""
        path = self.cell_path(row["cell_id"])
        write_text_atomic(path, json.dumps(to_jsonable(row), sort_keys=sort_keys, indent=1))
        return path

    def read_cell(self, cell_id: str) -> dict[str, Any]:
        return json.loads(self.cell_path(cell_id).read_text(encoding="utf-8"))

    def try_read_cell(self, cell_id: str) -> tuple[dict[str, Any] | None, str | None]:
        """(row, None) for a sound cell file; (None, reason) for a corrupt or unreadable one."""
        try:
            row = self.read_cell(cell_id)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if not isinstance(row, dict):
            return None, f"holds a JSON {type(row).__name__}, not an object"
        if row.get("cell_id") != cell_id:
            return None, f"its cell_id is {row.get('cell_id')!r}"
        return row, None

    def check_cells(self) -> tuple[set[str], dict[str, str]]:
        """(ids of sound cells, {id of a corrupt cell: reason}), reading every cell file back."""
        good, corrupt = set(), {}
        for cell_id in self.done_ids():
            row, reason = self.try_read_cell(cell_id)
            if row is None:
                corrupt[cell_id] = reason
            else:
                good.add(cell_id)
        return good, corrupt

    def rows(self, cell_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The sound rows among ``cell_ids`` (default: all); a corrupt cell is skipped with a warning."""
        ids = sorted(self.done_ids()) if cell_ids is None else list(cell_ids)
        out = []
        for c in ids:
            if not self.has(c):
                continue
            row, reason = self.try_read_cell(c)
            if row is None:
                warnings.warn(f"skipping corrupt cell {c} in {self.root} ({reason}); rerun the sweep to "
                              "recompute it", stacklevel=2)
                continue
            out.append(row)
        return out

    def write_spec(self, spec) -> None:
        write_text_atomic(self.root / "spec.json", spec.to_json(indent=1))

    def remove_stale_temporaries(self) -> int:
        """Delete ``*.tmp-*`` files a killed writer left behind; returns how many."""
        if not self.cells_dir.is_dir():
            return 0
        stale = [p for p in self.cells_dir.iterdir() if ".tmp-" in p.name]
        for p in stale:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        return len(stale)


# -- column names: the one place that knows how a nested row key becomes a DataFrame column -----------------
SEPARATOR = "."


def column(*keys: str) -> str:
    """The DataFrame column of the nested row key ``keys`` (``column("metrics", "frr", "0.9")`` is
    ``"metrics.frr.0.9"``): what :func:`flatten_row` makes of it."""
    return SEPARATOR.join(keys)


def param_col(axis: str) -> str:
    """Column of a sweep axis's value in each cell (a bundle's label for a bundle axis): ``param_col("world.d")``."""
    return column("params", axis)


def metric_col(name: str) -> str:
    """Column of a cell's metric, dotted for nested ones: ``metric_col("frr.0.9")``, ``metric_col("l0")``."""
    return column("metrics", name)


def world_col(name: str) -> str:
    """Column of a field of each cell's resolved WorldConfig: ``world_col("n")``."""
    return column("world", name)


def train_col(name: str) -> str:
    """Column of a field of each cell's resolved TrainConfig: ``train_col("lr")``, ``train_col("params.k")``."""
    return column("train", name)


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts become dotted columns (``metrics.frr.0.9``); lists stay as cell values."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(column(prefix, str(k)) if prefix else str(k), v)
        else:
            out[prefix] = value

    walk("", row)
    return out


def load_results(root: Path | str, cell_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Every finished cell of the store at ``root`` as one DataFrame, one row per cell, sorted by id.

    Columns are the flattened JSON: ``cell_id``, ``seed``, ``params.<axis>``, ``world.<field>``,
    ``train.<field>``, ``train.params.<knob>``, ``metrics.<metric>`` (``metrics.frr.0.9`` ...),
    ``theory.<prediction>``, ``seconds``, ``versions.<package>``.
    """
    rows = ResultStore(root).rows(cell_ids)
    return pd.DataFrame([flatten_row(r) for r in rows])
