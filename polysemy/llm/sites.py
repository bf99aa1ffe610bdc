"""Where activations are read and written: forward hooks on a decoder block (or its MLP).

Sites (``layer`` L counts blocks from 1, like ``output_hidden_states``):
- ``resid``: the residual stream after block L, i.e. the output of block L. For L < n_layers this
  equals ``model(..., output_hidden_states=True).hidden_states[L]`` (the last entry of
  ``hidden_states`` has the final norm applied, so for L = n_layers it differs).
- ``mlp``: the output of block L's MLP (what the MLP adds to the residual stream).

:func:`capture` runs only the blocks up to L: the hook raises :class:`_StopForward` as soon as the site
has been computed, so the later blocks and the unembedding never run (the model itself is untouched
and can still be used whole, e.g. for splicing). :func:`splice` replaces the site's output.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from ..errors import ConfigError, require

SITES = ("resid", "mlp")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class _StopForward(Exception):
    """Raised by the capture hook to end the forward pass after the site (our early exit)."""


def decoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The list of transformer blocks of a causal LM (Llama/Qwen/Mistral/Gemma, GPT-2, GPT-NeoX)."""
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return obj
    raise ConfigError(f"model: cannot find the decoder blocks of {type(model).__name__} "
                      "(supported: Llama-like model.layers, GPT-2 transformer.h, GPT-NeoX gpt_neox.layers)")


def check_site(model: torch.nn.Module, layer: int, site: str) -> None:
    """ConfigError unless ``site`` is known and ``1 <= layer <= n_blocks``."""
    require(site in SITES, f"site must be one of {list(SITES)}, got {site!r}")
    n = len(decoder_blocks(model))
    require(isinstance(layer, int) and 1 <= layer <= n, f"layer must be an integer in [1, {n}], got {layer!r}")


def site_module(model: torch.nn.Module, layer: int, site: str) -> torch.nn.Module:
    """The module whose forward output IS the site."""
    check_site(model, layer, site)
    block = decoder_blocks(model)[layer - 1]
    if site == "resid":
        return block
    mlp = getattr(block, "mlp", None)
    require(mlp is not None, f"site 'mlp' needs blocks with an .mlp module; {type(block).__name__} has none")
    return mlp


def _hidden(output):
    """A block returns a tensor or a tuple whose first entry is the hidden state (version-dependent)."""
    return output[0] if isinstance(output, tuple) else output


def _with_hidden(output, hidden: torch.Tensor):
    return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden


def autocast(device: str, dtype: str):
    """Autocast context for ``dtype`` ('float32': a no-op; 'bfloat16': torch.autocast on the device)."""
    require(dtype in DTYPES, f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[dtype])


@torch.no_grad()
def capture(model: torch.nn.Module, input_ids_BT: torch.Tensor, layer: int, site: str = "resid",
            dtype: str = "float32") -> torch.Tensor:
    """Activations at the site, ``[B, T, d]`` float32 on the model's device; runs blocks 1..L only."""
    captured: list[torch.Tensor] = []

    def hook(module, args, output):
        captured.append(_hidden(output).detach().float())
        raise _StopForward

    device = next(model.parameters()).device
    handle = site_module(model, layer, site).register_forward_hook(hook)
    try:
        with autocast(str(device), dtype):
            model(input_ids=input_ids_BT.to(device), use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    require(len(captured) == 1, "capture: the site's hook did not fire exactly once")
    return captured[0]


@contextlib.contextmanager
def splice(model: torch.nn.Module, layer: int, site: str,
           replace: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Within the block, the site's output ``a_BTD`` is replaced by ``replace(a_BTD)`` (same shape)."""

    def hook(module, args, output):
        hidden = _hidden(output)
        new = replace(hidden)
        require(new.shape == hidden.shape, f"splice: replacement shape {tuple(new.shape)} != {tuple(hidden.shape)}")
        return _with_hidden(output, new.to(hidden.dtype))

    handle = site_module(model, layer, site).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
