"""The result store: a directory with one JSON file per finished cell, read by pandas.

Layout::

    <store>/spec.json              the SweepSpec that filled it (informational; rewritten per run)
    <store>/cells/<cell_id>.json   one finished cell: config, metrics, theory, seconds, versions

Every file is written atomically (``<path>.tmp-<pid>`` then ``os.replace``), so a reader, or a rerun
after SIGKILL, sees either the whole cell or none of it. A cell file's presence is the only record that
the cell is done: there is no index to get out of sync. Stray ``*.tmp-*`` files left by a killed
process are ignored and removed on the next run.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..atomic import write_text_atomic

CELLS_DIR = "cells"


def versions() -> dict[str, str]:
    """Versions recorded beside every result: polysemy, torch, numpy, python."""
    import numpy
    import torch

    from .. import __version__

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

    def write_cell(self, row: dict[str, Any]) -> Path:
        """Store one finished cell (``row["cell_id"]`` names the file)."""
        path = self.cell_path(row["cell_id"])
        write_text_atomic(path, json.dumps(row, sort_keys=True, indent=1, default=_json_default))
        return path

    def read_cell(self, cell_id: str) -> dict[str, Any]:
        return json.loads(self.cell_path(cell_id).read_text(encoding="utf-8"))

    def rows(self, cell_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        ids = sorted(self.done_ids()) if cell_ids is None else list(cell_ids)
        return [self.read_cell(c) for c in ids if self.has(c)]

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


def _json_default(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot store {type(value).__name__} in a result row")


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts become dotted columns (``metrics.frr.0.9``); lists stay as cell values."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
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
