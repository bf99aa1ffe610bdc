"""Checkpoints (safetensors + JSON) and the SAELens layout.

``save_checkpoint(result_or_model, path)`` writes a directory:
  config.json           format, method, model class and structure, d, width, the TrainConfig, step,
                        samples, seconds, stop reason
  model.safetensors     parameters and buffers of the (G = 1) model, incl. the bias-adaptation state
  optimizer.safetensors Adam moments and step (TrainResult only)
  history.json          the history table (TrainResult only)
``load_checkpoint(path)`` returns a TrainResult; ``train(cfg, data, d, resume=result)`` continues it
exactly. The directory is written next to the target and renamed into place (never half-written).

``export_saelens(model, path)`` / ``import_saelens(path)``: SAELens's ``cfg.json`` +
``sae_weights.safetensors`` (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec, threshold for
jumprelu). Tied models export as W_enc = w^T, W_dec = a w, b_dec = b_pre; a tied JumpReLU with bias
b <= 0 is SAELens's jumprelu with threshold -b, a tied ReLU is "standard" with b_enc = b.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from ..errors import ConfigError
from .config import TrainConfig
from .models import SAE, TiedSAE, UntiedSAE
from .trainer import TrainResult

FORMAT = "polysemy-sae"
VERSION = 1
_MODEL_CLASSES = {"TiedSAE": TiedSAE, "UntiedSAE": UntiedSAE}


def _contiguous(state: dict) -> dict:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _write_dir_atomically(path: Path, write) -> None:
    """Call write(tmp_dir), then move tmp_dir to path (replacing an old directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write(tmp)
        old = None
        if path.exists():
            old = path.with_name(f"{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_checkpoint(result_or_model, path) -> Path:
    """Save a TrainResult (resumable) or an SAE (model only) to the directory ``path``."""
    result = result_or_model if isinstance(result_or_model, TrainResult) else None
    model = result.model if result is not None else result_or_model
    if not isinstance(model, SAE):
        raise ConfigError(f"save_checkpoint needs a TrainResult or an SAE, got {type(result_or_model).__name__}")
    config = result.config if result is not None else model.config
    meta = {
        "format": FORMAT, "version": VERSION, "method": model.method,
        "model_class": type(model.stack).__name__, "structure": model.stack.structure(),
        "d": model.d, "width": model.width,
        "train_config": config.to_dict() if config is not None else None,
    }
    if result is not None:
        meta.update(steps=result.steps, samples=result.samples, seconds=result.seconds,
                    stop_reason=result.stop_reason)

    def write(tmp: Path) -> None:
        save_file(_contiguous(model.stack.state_dict()), str(tmp / "model.safetensors"))
        if result is not None and result.optimizer_state is not None:
            save_file(_contiguous(result.optimizer_state), str(tmp / "optimizer.safetensors"))
        if result is not None:
            (tmp / "history.json").write_text(json.dumps(result.history.to_dict("records")))
        (tmp / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))

    _write_dir_atomically(Path(path), write)
    return Path(path)


def load_checkpoint(path, device: str | torch.device = "cpu") -> TrainResult:
    """Load a directory written by :func:`save_checkpoint` as a TrainResult."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise ConfigError(f"checkpoint path must be a directory with config.json, got {str(path)!r}")
    meta = json.loads(cfg_file.read_text())
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a polysemy checkpoint (format {meta.get('format')!r})")
    cls = _MODEL_CLASSES[meta["model_class"]]
    stack = cls(1, meta["d"], meta["width"], **meta["structure"])
    stack.load_state_dict(load_file(str(path / "model.safetensors")))
    stack = stack.to(device)
    config = TrainConfig.from_dict(meta["train_config"]) if meta.get("train_config") else None
    opt_file = path / "optimizer.safetensors"
    optimizer_state = load_file(str(opt_file)) if opt_file.exists() else None
    hist_file = path / "history.json"
    history = pd.DataFrame(json.loads(hist_file.read_text())) if hist_file.exists() else pd.DataFrame()
    return TrainResult(model=SAE(stack, meta["method"], config), history=history,
                       seconds=float(meta.get("seconds", 0.0)), samples=int(meta.get("samples", 0)),
                       steps=int(meta.get("steps", 0)), config=config, d=meta["d"],
                       optimizer_state=optimizer_state, stop_reason=meta.get("stop_reason", "steps"))


# -- SAELens layout -----------------------------------------------------------------------------------

def _saelens_tensors(model: SAE) -> tuple[str, dict, dict]:
    s = model.stack
    if isinstance(s, TiedSAE):
        s = s.unscaled_copy()  # fold the input scale c into b_pre and the biases (c = 1 form)
        # encoder w; decoder rows a_m w_m (tied) or a_m v_m (untied)
        W_enc, W_dec, b_dec = s.w_GMD.detach()[0].T, s.decoder_rows()[0], s.b_pre_GD.detach()[0]
        bias = s.bias_GM[0]
        if s.activation == "jumprelu":
            if bool((bias > 0).any()):
                raise ConfigError("export_saelens: a tied JumpReLU with positive biases has no SAELens form")
            return "jumprelu", {"W_enc": W_enc, "b_enc": torch.zeros_like(bias), "W_dec": W_dec,
                                "b_dec": b_dec, "threshold": -bias}, {}
        if s.activation == "relu":
            return "standard", {"W_enc": W_enc, "b_enc": bias, "W_dec": W_dec, "b_dec": b_dec}, {}
        raise ConfigError(f"export_saelens: activation {s.activation!r} has no SAELens architecture "
                          "(use jumprelu or relu)")
    shift = s.b_enc_GM.detach()[0]
    base = {"W_enc": s.W_enc_GDM.detach()[0], "b_enc": shift, "W_dec": s.W_dec_GMD.detach()[0],
            "b_dec": s.b_dec_GD.detach()[0]}
    if s.encoder == "relu":
        return "standard", base, {}
    if s.encoder == "topk":
        return "topk", base, {"k": int(s.k_G[0])}
    if s.encoder == "batchtopk":
        theta = float(s.threshold_G[0].clamp(min=0.0))
        return "jumprelu", {**base, "threshold": torch.full_like(shift, theta)}, {}
    return "jumprelu", {**base, "threshold": s.log_threshold_GM.detach()[0].exp()}, {}


def export_saelens(model, path) -> Path:
    """Write ``cfg.json`` and ``sae_weights.safetensors`` in SAELens's layout to directory ``path``."""
    if isinstance(model, TrainResult):
        model = model.model
    architecture, tensors, extra = _saelens_tensors(model)
    cfg = {"architecture": architecture, "d_in": model.d, "d_sae": model.width, "dtype": "float32",
           "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
           "reshape_activations": "none", "metadata": {"polysemy_method": model.method}, **extra}

    def write(tmp: Path) -> None:
        save_file(_contiguous(tensors), str(tmp / "sae_weights.safetensors"))
        (tmp / "cfg.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))

    _write_dir_atomically(Path(path), write)
    return Path(path)


def import_saelens(path) -> SAE:
    """Load a SAELens-layout directory (architectures standard, topk, jumprelu) as an untied SAE."""
    path = Path(path)
    try:
        cfg = json.loads((path / "cfg.json").read_text())
        tensors = load_file(str(path / "sae_weights.safetensors"))
    except FileNotFoundError:
        raise ConfigError(f"SAELens path must hold cfg.json and sae_weights.safetensors, got {str(path)!r}") from None
    architecture = cfg.get("architecture", "standard")
    encoders = {"standard": ("relu", "relu-l1"), "topk": ("topk", "topk"), "jumprelu": ("jumprelu", "jumprelu")}
    if architecture not in encoders:
        raise ConfigError(f"architecture must be one of {sorted(encoders)}, got {architecture!r}")
    encoder, method = encoders[architecture]
    d, width = int(cfg["d_in"]), int(cfg["d_sae"])
    stack = UntiedSAE(1, d, width, encoder=encoder)
    with torch.no_grad():
        stack.W_enc_GDM[0] = tensors["W_enc"]
        stack.W_dec_GMD[0] = tensors["W_dec"]
        stack.b_dec_GD[0] = tensors["b_dec"]
        stack.b_enc_GM[0] = tensors["b_enc"]
        if not cfg.get("apply_b_dec_to_input", True):
            # SAELens then encodes x W_enc + b_enc, ours (x - b_dec) W_enc + b_enc: fold b_dec W_enc in
            stack.b_enc_GM[0] = tensors["b_enc"] + tensors["b_dec"] @ tensors["W_enc"]
        if encoder == "jumprelu":
            stack.log_threshold_GM[0] = tensors["threshold"].log()
        if encoder == "topk":
            stack.k_G[0] = int(cfg["k"])
    return SAE(stack, method, None)

