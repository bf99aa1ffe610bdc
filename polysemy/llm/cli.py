"""``polysemy llm-bench``: the LLM benchmark from the command line (see ``polysemy.llm.bench``).

The config options are generated, not written here: one per field of the config's sections that has a
flag (``polysemy.llm.config``, each declared with ``registry.param``: help, flag, metavar, choices,
argparse type), one argument group per section. Besides them: the shortcuts into the method plan that
the old per-method fields had (:data:`SHORTCUTS`, read through ``config.ALIASES``) and GBA's knobs, whose
type, help and default come from the method registry (:data:`METHOD_KNOBS`). A bool field's flag sets
the other value than the default (``--no-match-l0``); a dict field's flag is repeatable, one entry a
use (``--sweep METHOD=V,V``). Every option defaults to None, "not given": the preset (--quick, --medium
or the full defaults) keeps its value.
"""

from __future__ import annotations

import sys
import typing

from ..jsonout import emit_json
from ..outputs import check_output_dir
from ..sae.registry import cli_parser, field_flags, get_method, method_knobs, shown_default
from .bench import format_table, run_llm_bench
from .config import ALIASES, SECTIONS, LLMBenchConfig
from .deps import require_transformers

# Flags that set an old per-method field (config.ALIASES): flag -> (old field, takes a list of the
# method's bench-axis values (else one value), metavar, help).
SHORTCUTS = {
    "ks": ("topk_ks", True, "K,K,..", "k values of topk (default 32,64,128; quick 16,64); '' for none beside "
                                      "the L0-matched one"),
    "batchtopk-k": ("batchtopk_k", False, None, "k of the unmatched batchtopk row (0: none)"),
    "l1s": ("l1_coefs", True, "L,L,..", "lambda values of relu-l1 (default 0.03,0.1,0.3)"),
    "gba-scales": ("gba_target_scales", True, "S,S,..", "GBA's frontier: extra GBA settings with every target "
                                                        "frequency times S (default 0.3,3)"),
}
# Method knobs (``polysemy train``'s flags, registry.method_knobs) that llm-bench takes as --METHOD-KNOB;
# they set ``method_params[METHOD]`` over the preset's.
METHOD_KNOBS = {"gba": ("htf", "ltf", "groups", "gamma", "adapt-every", "decoder")}


def register(subparsers) -> None:
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
    for name, section in SECTIONS.items():
        flags = field_flags(section)
        if not flags:
            continue
        group = p.add_argument_group(f"{name} ({section.__name__})")
        for flag, field, meta in flags:
            _add_field_option(group, section, flag, field, meta)
        if name == "plan":
            _add_plan_shortcuts(group)
    o = p.add_argument_group("output")
    o.add_argument("--out", default=None, help="output folder (default runs/llm-bench, -quick or -medium)")
    o.add_argument("--json", action="store_true", help="print one JSON object (with a 'methods' list) on stdout")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _add_field_option(group, section: type, flag: str, field: str, meta: dict) -> None:
    """The option of one section field, from its ``param`` metadata and annotation."""
    text = meta["help"]() if callable(meta["help"]) else meta["help"]
    kwargs = {"default": None, "help": text.replace("%", "%%")}
    hint = typing.get_type_hints(section)[field]
    if hint is bool:
        kwargs.update(action="store_const", const=not section.__dataclass_fields__[field].default)
    else:
        kwargs.update(type=meta.get("cli_type") or cli_parser(hint), metavar=meta.get("metavar"),
                      choices=meta.get("choices"))
        if hint is dict:
            kwargs["action"] = "append"
    group.add_argument(f"--{flag}", **kwargs)


def _add_plan_shortcuts(group) -> None:
    """The old per-method flags (SHORTCUTS) and the method knobs (METHOD_KNOBS)."""
    for flag, (old, many, metavar, text) in SHORTCUTS.items():
        kind = get_method(ALIASES[old][1]).axis_type()
        group.add_argument(f"--{flag}", type=cli_parser(tuple[kind, ...]) if many else kind, default=None,
                           metavar=metavar, help=text)
    knobs = method_knobs()
    for method, flags in METHOD_KNOBS.items():
        params = get_method(method).Params
        for flag in flags:
            knob = knobs[flag]
            text = params.cli_aliases[flag][1] if flag in params.cli_aliases else params.meta(knob.names[0])["help"]
            default = ", ".join(sorted({shown_default(params, name) for name in knob.names}))
            group.add_argument(f"--{method}-{flag}", type=knob.parse, default=None,
                               help=f"{method.upper()}'s {flag}: {text}; default {default}".replace("%", "%%"))


def _given(args, flag: str):
    return getattr(args, flag.replace("-", "_"), None)


def config_from_args(args) -> LLMBenchConfig:
    """The LLMBenchConfig of the parsed options: the preset (--quick, --medium or the full defaults) with
    the given options over it."""
    values = {}
    for section in SECTIONS.values():
        for flag, field, _ in field_flags(section):
            value = _given(args, flag)
            if value is not None:
                values[field] = dict(value) if isinstance(value, list) else value   # a dict field's entries
    if isinstance(values.get("lr"), dict):    # --lr gba=1e-2,topk=1e-3: one lr per method
        values["lrs"] = values.pop("lr")
    values.update({old: value for flag, (old, *_) in SHORTCUTS.items() if (value := _given(args, flag)) is not None})
    preset = LLMBenchConfig.quick if args.quick else LLMBenchConfig.medium if args.medium else LLMBenchConfig.full
    knobs = method_knobs()
    for method, flags in METHOD_KNOBS.items():
        given = {name: value for flag in flags if (value := _given(args, f"{method}-{flag}")) is not None
                 for name in knobs[flag].names}
        if given:
            values.setdefault("method_params", {})[method] = {**preset().plan.params_for(method), **given}
    return preset(**values)


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
