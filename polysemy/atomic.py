"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Write to ``<path>.tmp-<pid>`` in the same folder, flush and fsync, then ``os.replace`` (atomic on POSIX
within one file system). A failure removes the temporary file and leaves ``path`` untouched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating parent folders as needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 1, default=None) -> None:
    """Write ``obj`` as JSON (sorted keys) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=True, default=default))
