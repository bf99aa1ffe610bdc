"""Checks of ``polysemy llm-bench``'s inputs that run before anything is loaded, created or dequantised.

Order (each is a one-line ConfigError naming the option): ``--out`` is a writable folder; ``--device``
exists; ``--text`` reads as a corpus; ``--model`` resolves, and its layer count, read from the GGUF
metadata (``{architecture}.block_count``, via the ``gguf`` package's memory-mapped reader: no
dequantisation) or from ``config.json`` (``num_hidden_layers``), admits ``--layer``. A truncated or corrupt
GGUF fails here, in a second, instead of as an IndexError after the 30 s dequantisation.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, require
from ..outputs import check_output_dir
from .model import _resolve, check_device
from .text import load_corpus

LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")


def _field_value(field):
    if hasattr(field, "contents"):
        return field.contents()
    part = field.parts[field.data[0]]
    try:
        return bytes(part).decode("utf-8")
    except (TypeError, UnicodeDecodeError):
        return part[0]


def gguf_block_count(path: Path) -> int:
    """Number of transformer blocks recorded in a GGUF file's metadata."""
    try:
        from gguf import GGUFReader
    except ImportError:  # pragma: no cover - the LLM extras bring gguf
        raise ConfigError("model: reading a .gguf file needs the gguf package (make llm-bench installs it)") from None
    try:
        reader = GGUFReader(str(path))
        arch = str(_field_value(reader.fields["general.architecture"]))
        return int(_field_value(reader.fields[f"{arch}.block_count"]))
    except Exception as exc:  # gguf raises IndexError, ValueError, KeyError... on damaged files
        raise ConfigError(f"model {str(path)!r} is not a readable GGUF file (truncated or corrupt: "
                          f"{type(exc).__name__})") from None


def hf_block_count(folder: Path) -> int:
    """Number of transformer blocks in a Hugging Face folder's config.json."""
    file = folder / "config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"model config {str(file)!r} is not readable JSON ({type(exc).__name__})") from None
    for key in LAYER_KEYS:
        if isinstance(config, dict) and isinstance(config.get(key), int):
            return config[key]
    raise ConfigError(f"model config {str(file)!r} names no layer count (one of {', '.join(LAYER_KEYS)})")


def model_block_count(model_path: str | None) -> int:
    """The block count of the model ``--model`` names (the packaged one when None)."""
    _, hf_folder, gguf_file = _resolve(model_path)
    return gguf_block_count(gguf_file) if gguf_file is not None else hf_block_count(hf_folder)


def preflight(cfg, out: str | Path) -> list[str]:
    """Run every check above; returns the corpus' documents (so they are read once)."""
    check_output_dir("--out", out)
    src = cfg.source
    check_device(src.device)
    texts = load_corpus(src.text, src.extra_texts)
    blocks = model_block_count(src.model)
    require(1 <= src.layer <= blocks, f"--layer must be an integer in [1, {blocks}] for this model, got {src.layer}")
    return texts
