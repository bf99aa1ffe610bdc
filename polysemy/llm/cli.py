"""``polysemy llm-bench``: the LLM benchmark from the command line (see ``polysemy.llm.bench``)."""

from __future__ import annotations

import sys

from ..jsonout import emit_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "llm-bench",
        help="GBA vs TopK/BatchTopK/ReLU-L1/JumpReLU SAEs on a real language model's activations",
        description="Extract activations from a causal LM (packaged SmolLM2-135M by default, or --model PATH; "
                    "nothing is downloaded), train every SAE method on them with several seeds, and report "
                    "nmse, explained variance, L0, alive fraction, CE-loss recovered, cross-seed consistency "
                    "and seconds, with the sparsity-frontier and consistency figures and a snippet page.")
    p.add_argument("--quick", action="store_true", help="CPU defaults: layer 6, 131k tokens, width 1152, "
                   "800 steps, 2 seeds (about 10 CPU-minutes)")
    p.add_argument("--model", default=None, metavar="PATH", help="local HF model folder or .gguf file "
                   "(default: the packaged SmolLM2-135M-Instruct)")
    p.add_argument("--text", default=None, metavar="PATH", help="corpus (.json like the packaged one, or .txt "
                   "with one document per line; default: packaged Wikipedia summaries)")
    p.add_argument("--layer", type=int, default=None, help="block whose output is read (1-based; default 15, quick 6)")
    p.add_argument("--site", choices=["resid", "mlp"], default=None, help="residual stream (default) or MLP output")
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="autocast dtype of the model")
    p.add_argument("--tokens", type=int, default=None, help="training tokens")
    p.add_argument("--width", type=int, default=None, help="SAE width (latents)")
    p.add_argument("--steps", type=int, default=None, help="training steps per SAE")
    p.add_argument("--batch-size", type=int, default=None, help="training batch size")
    p.add_argument("--seeds", type=int, default=None, help="seeds per setting (>= 2 for consistency)")
    p.add_argument("--methods", default=None, help="comma-separated subset of gba,ba,topk,batchtopk,relu-l1,jumprelu")
    p.add_argument("--ks", default=None, metavar="K,K,..", help="k values of topk (default 32,64,128; quick 16,32,64)")
    p.add_argument("--l1s", default=None, metavar="L,L,..", help="lambda values of relu-l1 (default 0.03,0.1,0.3)")
    p.add_argument("--out", default=None, help="output folder (default runs/llm-bench or runs/llm-bench-quick)")
    p.add_argument("--json", action="store_true", help="print one JSON object (with a 'methods' list) on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def config_from_args(args):
    """The LLMBenchConfig of the parsed options: --quick or the full defaults, explicit options win."""
    from .bench import LLMBenchConfig

    overrides = {k: v for k, v in {
        "model": args.model, "text": args.text, "layer": args.layer, "site": args.site, "device": args.device,
        "dtype": args.dtype, "tokens": args.tokens, "width": args.width, "steps": args.steps,
        "batch_size": args.batch_size, "seeds": args.seeds,
        "methods": _split(args.methods, str), "topk_ks": _split(args.ks, int), "l1_coefs": _split(args.l1s, float),
    }.items() if v is not None}
    return LLMBenchConfig.quick(**overrides) if args.quick else LLMBenchConfig(**overrides)


def _split(text: str | None, kind):
    """'a,b,c' -> a tuple of ``kind`` (None when the option was not given); bad items are ConfigErrors."""
    if text is None:
        return None
    try:
        return tuple(kind(item.strip()) for item in text.split(",") if item.strip())
    except ValueError:
        from ..errors import ConfigError

        raise ConfigError(f"expected a comma-separated list of {kind.__name__} values, got {text!r}") from None


def run(args) -> int:
    from .bench import format_table, run_llm_bench
    from .deps import require_transformers

    from ..outputs import check_output_dir

    cfg = config_from_args(args)
    out = args.out or ("runs/llm-bench-quick" if args.quick else "runs/llm-bench")
    check_output_dir("--out", out)
    require_transformers()
    report = run_llm_bench(cfg, out, progress=not args.no_progress)
    if args.json:
        emit_json(args, report)
    else:
        print(format_table(report))
        print(f"results, figures and snippets in {out}/", file=sys.stderr)
    return 0
