"""The optional extras live together: with the llm and peers extras both installed (in either order),
every installed distribution's requirements among them are met, and the imports work."""

import importlib.metadata as md

import pytest

STACK = ("polysemy", "sae-lens", "transformer-lens", "transformers", "huggingface-hub", "tokenizers",
         "eai-sparsify", "accelerate", "safetensors")


def _installed(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def _unmet(requirement_cls, version_cls):
    """Requirements (by the stack's own metadata, polysemy's llm and peers extras included) that the
    installed versions do not satisfy."""
    bad = []
    for dist in STACK:
        if _installed(dist) is None:
            continue
        for text in md.requires(dist) or []:
            req = requirement_cls(text)
            extras = {"llm", "peers"} if dist == "polysemy" else {""}
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in extras):
                continue
            have = _installed(req.name)
            if have is not None and version_cls(have) not in req.specifier:
                bad.append(f"{dist} needs {req}, found {req.name} {have}")
    return bad


def test_llm_and_peers_extras_are_mutually_consistent():
    if _installed("transformers") is None or _installed("sae-lens") is None:
        pytest.skip("needs both the llm and the peers extras (make llm-bench, make peers)")
    packaging = pytest.importorskip("packaging.requirements")
    from packaging.version import Version

    assert _unmet(packaging.Requirement, Version) == []
    import sae_lens  # noqa: F401  (failed on a huggingface_hub mismatch before the pins)
    import sparsify  # noqa: F401
    import transformers  # noqa: F401

    import polysemy.llm  # noqa: F401
