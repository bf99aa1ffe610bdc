"""Checkpoints (safetensors + JSON) and the SAELens layout.

``save_checkpoint(result_or_model, path)`` writes a directory:
  config.json           format, method, model class and structure, d, width, the TrainConfig, step,
                        samples, seconds, stop reason
  model.safetensors     parameters and buffers of the (G = 1) model, incl. the bias-adaptation state
  optimizer.safetensors Adam moments and step (TrainResult only)
  history.json          the history table (TrainResult only)
``load_checkpoint(path)`` returns a TrainResult; ``train(cfg, data, d, resume=result)`` continues it
exactly. The directory is written next to the target and renamed into place (never half-written).
Only a polysemy checkpoint is ever replaced: a target that is an existing file, or a non-empty folder
that is not a checkpoint (no ``config.json`` of this format), is refused with a ConfigError and left as
it is. ``check_save_target`` runs the same test up front (the CLI calls it before training).
Every load error (missing or truncated file, bad JSON, unknown model class, tensors of another shape)
is a one-line ConfigError naming the file. Replacing a folder takes two renames; a save killed between
them is finished by ``recover_interrupted_save`` on the next load or save (periodic checkpoints of
``polysemy train --checkpoint-every`` can be killed at any instant).

The model is rebuilt as its method's ``model_class`` (checkpoints name the class they were saved
from; those written before a method had a class of its own name the shared one, and load into the
method's class, see models.py).

``export_saelens(model, path)`` / ``import_saelens(path)``: SAELens's ``cfg.json`` +
``sae_weights.safetensors`` (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec, threshold for
jumprelu). Each method writes its own form (``Method.saelens_export``): tied models export as W_enc =
w^T, W_dec = a w, b_dec = b_pre; a tied JumpReLU with bias b <= 0 is SAELens's jumprelu with threshold
-b, a tied ReLU is "standard" with b_enc = b. Importing picks the method that declares the
architecture (``Method.saelens_architectures``).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from ..errors import ConfigError
from ..io import atomic_path
from .config import TrainConfig
from .models import SAE, StackedSAE
from .registry import get_method, list_methods
from .trainer import TrainResult

FORMAT = "polysemy-sae"
VERSION = 1


def _model_class_names() -> list[str]:
    """Names of every model class (StackedSAE and its subclasses, the methods' included)."""
    list_methods()    # the methods' own classes are defined when the registry loads
    found, todo = set(), [StackedSAE]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo += cls.__subclasses__()
    return sorted(found)


def _contiguous(state: dict) -> dict:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def is_checkpoint(path) -> bool:
    """True when ``path`` is a folder written by :func:`save_checkpoint` (its config.json says so)."""
    try:
        meta = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def _is_saelens_dir(path) -> bool:
    return (Path(path) / "cfg.json").is_file() and (Path(path) / "sae_weights.safetensors").is_file()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def _leftovers(path: Path, kind: str) -> list[Path]:
    """Folders ``<name>.<kind>-<pid>`` beside ``path`` whose writer (pid) is no longer running."""
    out = []
    for p in path.parent.glob(f"{glob.escape(path.name)}.{kind}-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if p.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            out.append(p)
    return sorted(out, key=lambda p: p.stat().st_mtime, reverse=True)


def recover_interrupted_save(path, owned=is_checkpoint) -> bool:
    """Finish a save that was killed between its two renames; True if ``path`` was restored.

    A save renames the old folder to ``<name>.old-<pid>`` and then the complete new one
    (``<name>.tmp-<pid>``, whose config file is written last, so its presence means complete) to ``path``.
    A kill between the two leaves ``path`` missing: the newest complete copy (new before old) is moved
    back into place, and the dead writer's other leftovers are removed.
    """
    path = Path(path)
    if path.exists() or not path.parent.is_dir():
        return False
    for kind in ("tmp", "old"):
        for candidate in _leftovers(path, kind):
            if owned(candidate):
                os.replace(candidate, path)
                for rest in _leftovers(path, "tmp") + _leftovers(path, "old"):
                    shutil.rmtree(rest, ignore_errors=True)
                return True
    return False


def check_save_target(path, *, overwrite: bool = True, param: str = "path", owned=is_checkpoint) -> Path:
    """Refuse a target that saving would destroy: an existing file, a non-empty folder that ``owned``
    does not recognise (the user's files), or, unless ``overwrite``, an existing checkpoint."""
    path = Path(path)
    recover_interrupted_save(path, owned)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{param} must name a folder, but {str(path)!r} is an existing file (left as it is)")
    if path.is_dir() and any(path.iterdir()):
        if not owned(path):
            raise ConfigError(f"{param} must be a new or empty folder or a polysemy checkpoint, but "
                              f"{str(path)!r} holds other files (left as they are)")
        if not overwrite:
            raise ConfigError(f"{param} {str(path)!r} already holds a checkpoint; add --overwrite to replace it")
    return path


def _write_dir_atomically(path: Path, write, owned=is_checkpoint) -> None:
    """Call write(tmp_dir), then move tmp_dir to path (replacing an old directory only if ``owned``)."""
    path = check_save_target(path, param="checkpoint path", owned=owned)
    with atomic_path(path) as tmp:   # <name>.tmp-<pid>, and an old folder moved aside to <name>.old-<pid>
        tmp.mkdir()
        write(tmp)
    for rest in _leftovers(path, "tmp") + _leftovers(path, "old"):  # a killed earlier writer's
        shutil.rmtree(rest, ignore_errors=True)


def save_checkpoint(result_or_model, path, extra_json: dict | None = None) -> Path:
    """Save a TrainResult (resumable) or an SAE (model only) to the directory ``path``.

    extra_json: {file name: JSON-able object} written into the same folder in the same atomic move
    (``polysemy train`` keeps its world and data seed there, so ``--resume`` needs nothing else).
    """
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
        for name, obj in (extra_json or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2, sort_keys=True))
        (tmp / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))

    _write_dir_atomically(Path(path), write)
    return Path(path)


def _read_json(file: Path, what: str):
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {what} {str(file)!r} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"checkpoint {what} {str(file)!r} is not valid JSON ({exc})") from None


def _read_tensors(file: Path) -> dict:
    try:
        return load_file(str(file))
    except FileNotFoundError:
        raise ConfigError(f"checkpoint file {str(file)!r} is missing") from None
    except Exception as exc:  # safetensors raises its own error types for truncated or corrupt files
        raise ConfigError(f"checkpoint file {str(file)!r} is truncated or corrupt "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def load_checkpoint(path, device: str | torch.device = "cpu") -> TrainResult:
    """Load a directory written by :func:`save_checkpoint` as a TrainResult."""
    path = Path(path)
    recover_interrupted_save(path)
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise ConfigError(f"checkpoint path must be a directory with config.json, got {str(path)!r}")
    meta = _read_json(cfg_file, "config")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ConfigError(f"{path} is not a polysemy checkpoint (format {found!r})")
    if meta.get("model_class") not in _model_class_names():
        raise ConfigError(f"model_class in {str(cfg_file)!r} must be one of {_model_class_names()}, "
                          f"got {meta.get('model_class')!r}")
    try:
        method = get_method(meta["method"])
        stack = method.model_class(1, int(meta["d"]), int(meta["width"]), **meta["structure"])
        config = TrainConfig.from_dict(meta["train_config"]) if meta.get("train_config") else None
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise ConfigError(f"{str(cfg_file)!r}: {exc}") from None
        raise ConfigError(f"{str(cfg_file)!r} lacks or mangles a field ({type(exc).__name__}: {exc})") from None
    state = _read_tensors(path / "model.safetensors")
    try:
        stack.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ConfigError(f"model.safetensors in {str(path)!r} does not match config.json "
                          f"(d={meta['d']}, width={meta['width']}): {' '.join(first[1:2]) or first[0]}") from None
    stack = stack.to(device)
    opt_file = path / "optimizer.safetensors"
    optimizer_state = _read_tensors(opt_file) if opt_file.exists() else None
    hist_file = path / "history.json"
    history = pd.DataFrame(_read_json(hist_file, "history")) if hist_file.exists() else pd.DataFrame()
    return TrainResult(model=SAE(stack, meta["method"], config), history=history,
                       seconds=float(meta.get("seconds", 0.0)), samples=int(meta.get("samples", 0)),
                       steps=int(meta.get("steps", 0)), config=config, d=meta["d"],
                       optimizer_state=optimizer_state, stop_reason=meta.get("stop_reason", "steps"))


# -- SAELens layout -----------------------------------------------------------------------------------

def export_saelens(model, path) -> Path:
    """Write ``cfg.json`` and ``sae_weights.safetensors`` in SAELens's layout to directory ``path``."""
    if isinstance(model, TrainResult):
        model = model.model
    architecture, tensors, extra = get_method(model.method).saelens_export(model.stack)
    cfg = {"architecture": architecture, "d_in": model.d, "d_sae": model.width, "dtype": "float32",
           "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
           "reshape_activations": "none", "metadata": {"polysemy_method": model.method}, **extra}

    def write(tmp: Path) -> None:
        save_file(_contiguous(tensors), str(tmp / "sae_weights.safetensors"))
        (tmp / "cfg.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))

    _write_dir_atomically(Path(path), write, owned=_is_saelens_dir)
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
    readers = {a: m for m in list_methods() for a in get_method(m).declared("saelens_architectures")}
    if architecture not in readers:
        raise ConfigError(f"architecture must be one of {sorted(readers)}, got {architecture!r}")
    method = get_method(readers[architecture])
    d, width = int(cfg["d_in"]), int(cfg["d_sae"])
    stack = method.model_class(1, d, width)
    with torch.no_grad():
        stack.W_enc_GDM[0] = tensors["W_enc"]
        stack.W_dec_GMD[0] = tensors["W_dec"]
        stack.b_dec_GD[0] = tensors["b_dec"]
        stack.b_enc_GM[0] = tensors["b_enc"]
        if not cfg.get("apply_b_dec_to_input", True):
            # SAELens then encodes x W_enc + b_enc, ours (x - b_dec) W_enc + b_enc: fold b_dec W_enc in
            stack.b_enc_GM[0] = tensors["b_enc"] + tensors["b_dec"] @ tensors["W_enc"]
        method.saelens_import(stack, tensors, cfg)
    return SAE(stack, method.name, None)

