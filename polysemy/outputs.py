"""Output paths, checked before any work starts, so that no command fails late or writes where it must not.

Every command that writes calls :func:`check_output_dir` on each folder it will write into, right after
parsing its options. The check creates nothing that stays: it finds the nearest existing ancestor of the
path, refuses a path (or an ancestor) that is an existing file, and proves that the place is writable by
creating and removing a probe folder there (``os.access`` is not enough: root passes it under ``/proc``).
A failure is a one-line :class:`~polysemy.errors.ConfigError` naming the option.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and not p.is_symlink():
        if p.parent == p:
            break
        p = p.parent
    return p


def check_output_dir(param: str, path: str | os.PathLike) -> Path:
    """Check that ``path`` is (or can be created as) a writable folder; returns it as a Path.

    ConfigError when ``path`` or one of its ancestors is an existing file, or the place is not
    writable. Nothing is created or left behind.
    """
    if path is None or str(path) == "":
        raise ConfigError(f"{param} must be a folder path, got {path!r}")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{param} must be a folder, but {str(p)!r} is an existing file")
    base = _nearest_existing(p.absolute())
    if not base.is_dir():
        raise ConfigError(f"{param} must be a folder path, but {str(base)!r} is an existing file, "
                          f"so {str(p)!r} cannot be created")
    try:
        probe = tempfile.mkdtemp(prefix=".polysemy-probe-", dir=base)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{param} must be a writable folder, got {str(p)!r} ({reason} in {str(base)!r})") from None
    os.rmdir(probe)
    return p


def check_output_file(param: str, path: str | os.PathLike) -> Path:
    """Check that the file ``path`` can be written: not a folder, and its folder passes check_output_dir."""
    if path is None or str(path) == "":
        raise ConfigError(f"{param} must be a file path, got {path!r}")
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{param} must be a file path, but {str(p)!r} is an existing folder")
    check_output_dir(param, p.parent if str(p.parent) else ".")
    return p


def is_empty_dir(path: Path) -> bool:
    """True for an existing folder with nothing in it."""
    return path.is_dir() and not any(path.iterdir())
