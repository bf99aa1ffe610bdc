"""End to end: ``polysemy llm-bench`` on a tiny saved Llama with a word-level tokenizer (no download)."""

import json

import pytest
import torch

pytest.importorskip("transformers", reason="the LLM extras (transformers) are not installed")

from polysemy.cli import main  # noqa: E402
from polysemy.errors import ConfigError  # noqa: E402
from polysemy.llm.bench import LLMBenchConfig  # noqa: E402

WORDS = [f"w{i}" for i in range(60)]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised 3-block Llama and a word-level tokenizer, saved like a local HF model."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    root = tmp_path_factory.mktemp("tiny")
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                                unk_token="<unk>")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
    transformers.LlamaForCausalLM(config).save_pretrained(root / "model")
    fast.save_pretrained(root / "model")
    gen = torch.Generator().manual_seed(0)
    docs = [" ".join(WORDS[i] for i in torch.randint(0, 60, (40,), generator=gen).tolist()) for _ in range(300)]
    (root / "corpus.txt").write_text("\n".join(docs))
    return root


def test_llm_bench_json_on_a_tiny_local_model(tiny_model_dir, tmp_path, capsys):
    argv = ["llm-bench", "--quick", "--model", str(tiny_model_dir / "model"), "--text",
            str(tiny_model_dir / "corpus.txt"), "--layer", "2", "--tokens", "1024", "--width", "64",
            "--steps", "6", "--batch-size", "32", "--ks", "4,8", "--l1s", "0.1", "--out", str(tmp_path),
            "--json", "--no-progress"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["methods"]
    assert [(r["method"], r["setting"]) for r in rows] == [
        ("gba", ""), ("ba", ""), ("topk", "k=4"), ("topk", "k=8"), ("batchtopk", "k=32"), ("relu-l1", "l1=0.1"),
        ("jumprelu", "")]
    for r in rows:
        for key in ("method", "nmse", "explained_variance", "l0", "alive_fraction", "ce_recovered",
                    "consistency", "seconds", "params"):
            assert key in r, key
        assert r["seeds"] == 2 and len(r["per_seed"]) == 2
        assert 0 <= r["alive_fraction"] <= 1 and r["l0"] >= 0 and 0 <= r["consistency"] <= 1
    topk = [r for r in rows if r["method"] == "topk"]
    assert [r["l0"] for r in topk] == [pytest.approx(4), pytest.approx(8)]   # TopK fires exactly k
    for name in ("frontier.png", "consistency.png", "snippets.html", "results.json"):
        assert (tmp_path / name).exists(), name
    assert "<mark>" in (tmp_path / "snippets.html").read_text()


def test_bad_options_are_one_line_config_errors(tmp_path, capsys):
    assert main(["llm-bench", "--quick", "--width", "8", "--out", str(tmp_path)]) == 2   # k=16 > width
    assert "topk_ks" in capsys.readouterr().err
    assert main(["llm-bench", "--quick", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="methods"):
        LLMBenchConfig(methods=("gba", "sparse-magic"))
    if not torch.cuda.is_available():
        assert main(["llm-bench", "--quick", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "device" in capsys.readouterr().err


def test_config_json_round_trip():
    cfg = LLMBenchConfig.quick(layer=3, topk_ks=(8, 16))
    assert LLMBenchConfig.from_json(cfg.to_json()) == cfg
    assert [s[0] for s in cfg.settings()].count("topk") == 2
