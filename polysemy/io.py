"""File output for the whole package: atomic writes, and the one conversion of results to JSON values.

Atomic writes: a reader (or a rerun after a crash or SIGKILL) sees the old file or the new one, never half
of one. Everything is written to a temporary ``<name>.tmp-<pid>`` beside the target, in the same folder
(so the final ``os.replace`` stays on one file system, where it is atomic on POSIX), flushed and fsynced,
then moved over the target. On an exception the temporary is removed and the target is left as it was.
The ``.tmp-<pid>`` name is a contract: the result store ignores and sweeps up ``*.tmp-*`` files, and a
checkpoint save killed between its renames is recovered from ``<name>.tmp-<pid>`` / ``<name>.old-<pid>``
(``polysemy.sae.checkpoint.recover_interrupted_save``).

- :func:`atomic_write`: a context manager yielding an open file (text or binary) on the temporary.
- :func:`atomic_path`: a context manager yielding the temporary's path, for writers that take a path
  (``savefig``, safetensors, ``save_pretrained``); it may be a file or a folder.
- :func:`write_text_atomic`, :func:`write_bytes_atomic`, :func:`write_json_atomic`,
  :func:`save_figure_atomic`: the common cases.

JSON: :func:`to_jsonable` turns results (numpy and torch scalars and arrays, tuples, sets, paths,
dataclasses and configs, nested dicts) into plain JSON values. ``strict=True`` also turns non-finite
floats into ``None``, for output that must be strict JSON (``--json``, reports); the default keeps them,
for the result store, whose NaN metrics must read back as NaN.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def temporary_path(path: str | Path, suffix: str = "") -> Path:
    """The temporary beside ``path`` that this process writes first: ``<name>.tmp-<pid><suffix>``."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}{suffix}")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _fsync_file(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = "", keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, move what was written there onto
    ``path``. On an exception the temporary (file or folder) is removed and ``path`` is untouched.

    ``suffix`` ends the temporary's name (``".png"`` lets a writer that infers the format from the
    name see the right one). The block may write a file or a folder. A folder replaces an existing
    folder at ``path`` by two renames (the old one to ``<name>.old-<pid>``, removed afterwards);
    ``keep_existing=True`` instead keeps whatever is already at ``path`` (a cache another process
    finished first) and discards the new one. Parent folders are created as needed; a stale temporary
    of this process is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path, suffix)
    _remove(tmp)
    try:
        yield tmp
        if not (tmp.exists() or tmp.is_symlink()):
            raise FileNotFoundError(f"nothing was written to {str(tmp)!r} for {str(path)!r}")
        if keep_existing and path.exists():
            return
        if tmp.is_dir():
            old = None
            if path.is_dir():
                old = path.with_name(f"{path.name}.old-{os.getpid()}")
                _remove(old)
                os.replace(path, old)
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            _fsync_file(tmp)
            os.replace(tmp, path)
    finally:
        _remove(tmp)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary beside ``path`` with ``mode`` (``"w"`` text, ``"wb"`` binary) and yield the file;
    on success it is flushed, fsynced and moved onto ``path``, on an exception removed (``path``
    untouched). ``encoding`` applies to text modes only."""
    if "w" not in mode or any(c in mode for c in "ar+x"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:      # atomic_path fsyncs the closed file before the rename
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating parent folders as needed."""
    with atomic_write(path, "w") as fh:
        fh.write(text)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating parent folders as needed."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 1, default=None) -> None:
    """Write ``obj`` as JSON (sorted keys) to ``path`` atomically. ``default``: as in ``json.dumps``."""
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=True, default=default))


def save_figure_atomic(fig, path: str | Path, *, close: bool = True, **savefig) -> Path:
    """``fig.savefig(path, **savefig)`` atomically; the figure is closed afterwards unless ``close=False``.

    The temporary keeps ``path``'s extension, so matplotlib infers the same format as it would for
    ``path`` (pass ``format=`` to be explicit).
    """
    path = Path(path)
    try:
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, **savefig)
    finally:
        if close:
            import matplotlib.pyplot as plt  # lazy: CLI start-up (every command imports io)

            plt.close(fig)
    return path


# -- JSON ------------------------------------------------------------------------------------------------
def to_jsonable(value: Any, *, strict: bool = False) -> Any:
    """``value`` as plain JSON values: dicts (keys made strings), lists, str, int, float, bool, None.

    Converted: ``Config`` objects and anything else with ``to_dict()`` (through it); other dataclasses
    (field by field); lists, tuples, sets (to lists); numpy and torch arrays and scalars (``tolist``);
    other scalars with ``item()``; paths (to strings). Anything else is returned as it is, so
    ``json.dumps`` decides (and its ``default`` applies). ``strict=True`` turns NaN and infinities into
    ``None`` (strict JSON); by default they are kept (Python's ``json`` writes and reads them back).
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, strict=strict) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, strict=strict) for v in value]
    if isinstance(value, float):
        return None if strict and not math.isfinite(value) else float(value)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, (set, frozenset)):
        return [to_jsonable(v, strict=strict) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "to_dict") and callable(value.to_dict) and not isinstance(value, type):
        return to_jsonable(value.to_dict(), strict=strict)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name), strict=strict) for f in dataclasses.fields(value)}
    if hasattr(value, "tolist") and callable(value.tolist):        # numpy / torch arrays and scalars
        return to_jsonable(value.tolist(), strict=strict)
    if hasattr(value, "item") and callable(value.item):
        return to_jsonable(value.item(), strict=strict)
    return value
