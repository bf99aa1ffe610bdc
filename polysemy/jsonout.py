"""``--json`` output: stdout carries exactly one JSON object, and nothing else.

``polysemy.cli.main`` runs a command given ``--json`` with ``sys.stdout`` redirected to stderr, so that
whatever a library prints (sparsify's "Triton not installed ...", a progress line) cannot corrupt the
JSON. The command writes its one object with :func:`emit_json`, which goes to the real stdout kept in
``args.json_stdout``.
"""

from __future__ import annotations

import json
import sys


def emit_json(args, obj, **dumps_kwargs) -> None:
    """Write ``obj`` as one line of JSON to the command's real stdout (see the module docstring)."""
    stream = getattr(args, "json_stdout", None) or sys.stdout
    stream.write(json.dumps(obj, **dumps_kwargs) + "\n")
    stream.flush()
