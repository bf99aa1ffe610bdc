"""The old name of :mod:`polysemy.io`'s atomic writes, kept so that code written against it still imports.

New code imports from :mod:`polysemy.io` (atomic writes and the one JSON conversion live there).
"""

from .io import atomic_path, atomic_write, write_json_atomic, write_text_atomic

__all__ = ["atomic_path", "atomic_write", "write_json_atomic", "write_text_atomic"]
