"""polysemy.llm: SAEs on a real language model's activations.

    from polysemy.llm import load_model, load_texts, token_contexts, extract_activations, ActivationStore
    lm = load_model()                                   # packaged SmolLM2-135M (or load_model("path"))
    ctx = token_contexts(lm.tokenizer, load_texts(), context_length=128, n_contexts=1024)
    store = extract_activations(lm, ctx, "runs/store", layer=6)   # shards + meta.json, resumable
    for x in store.stream(batch_size=256, seed=0): ...           # normalised [B, d] batches
    CEEvaluator(lm.model, ctx[:8], 6, "resid", store.normalizer).evaluate(sae)["ce_recovered"]
    run_llm_bench(LLMBenchConfig.quick(), "runs/llm-bench-quick")  # = polysemy llm-bench --quick

Importing this package does not import transformers; the functions that need it say how to install it.
See docs/llm.md.
"""

from .bench import format_table, run_llm_bench
from .config import LLMBenchConfig
from .deps import require_transformers, transformers_available
from .evaluate import consistency, evaluate_sae
from .extract import extract_activations
from .model import LoadedModel, cache_root, load_model
from .normalize import NormalizeConfig, Normalizer
from .sites import SITES, capture, splice
from .splice import CEEvaluator, ce_loss_recovered
from .store import ActivationStore
from .text import load_texts, token_contexts

__all__ = [
    "LLMBenchConfig", "run_llm_bench", "format_table", "require_transformers", "transformers_available",
    "evaluate_sae", "consistency", "extract_activations", "LoadedModel", "load_model", "cache_root",
    "NormalizeConfig", "Normalizer", "SITES", "capture", "splice", "CEEvaluator", "ce_loss_recovered",
    "ActivationStore", "load_texts", "token_contexts",
]
