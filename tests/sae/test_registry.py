"""The registry is the one source of method knowledge (issue 10): parameter metadata, the generated
``polysemy train`` flags, the stack key, the benches' method lists, colours and the docs' table."""

import dataclasses
from pathlib import Path

import pytest

from polysemy.cli import build_parser, main
from polysemy.errors import ConfigError
from polysemy.sae import TrainConfig, get_method, list_methods
from polysemy.sae import registry
from polysemy.sae.methods.topk import TopK, TopKParams
from polysemy.sae.registry import MethodParams, method_knobs, param, register_method

# The flags polysemy train had when they were written by hand (METHOD_KNOBS): kept, with their fields.
HAND_WRITTEN = {
    "k": ("k",), "aux-k": ("aux_k",), "aux-coef": ("aux_coef",), "threshold-beta": ("threshold_beta",),
    "groups": ("groups",), "htf": ("htf",), "ltf": ("ltf",), "target": ("target",),
    "gamma": ("gamma_plus", "gamma_minus"), "gamma-plus": ("gamma_plus",), "gamma-minus": ("gamma_minus",),
    "eps": ("eps",), "adapt-every": ("adapt_every",), "buffer": ("buffer",), "a0": ("a0",),
    "activation": ("activation",), "smooth-width": ("smooth_width",), "input-scale": ("input_scale",),
    "decoder": ("decoder",), "bias-init": ("bias_init",), "bias-floor": ("bias_floor",), "lowering": ("lowering",),
    "pre-bias": ("pre_bias",), "l1": ("l1",), "l0-coef": ("l0_coef",), "threshold": ("threshold",),
    "bandwidth": ("bandwidth",)}


def test_every_parameter_has_metadata():
    for m in list_methods():
        cls = get_method(m).Params
        for name in cls.field_names():
            assert cls.meta(name).get("help"), (m, name)


def test_the_hand_written_flags_are_generated_with_the_same_fields():
    knobs = method_knobs()
    for flag, names in HAND_WRITTEN.items():
        assert knobs[flag].names == names, flag
    assert "dead-after-samples" not in knobs          # cli=False
    assert {"batchtopk", "topk", "topk-tied"} <= set(knobs["k"].methods) and "gba" not in knobs["k"].methods
    assert {"ba", "gba", "gba-paper"} <= set(knobs["gamma"].methods) and "topk" not in knobs["gamma"].methods


def test_train_help_lists_each_knob_with_its_methods_and_defaults(capsys):
    with pytest.raises(SystemExit):   # help lines wrap between words only
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--htf X highest target frequency; default 0.1 [gba, gba-paper]" in out
    assert "default mean-norm (ba, gba), none (ba-theory, gba-paper)" in out
    assert "--aux-k N dead latents used by the AuxK loss; default d/2" in out


def test_a_knob_of_another_method_names_the_methods_it_applies_to(capsys):
    argv = ["train", "--n", "16", "--d", "8", "--s", "1", "--steps", "2", "--quiet", "--method", "relu-l1", "--k", "3"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--k does not apply to method 'relu-l1' (it applies to: batchtopk, " in err and "\n" not in err


def test_structure_key_includes_the_batch_size_and_the_structural_params():
    base = TrainConfig(method="topk", width=32, steps=10, params={"k": 2})
    method = get_method("topk")
    assert method.structure_key(base) == method.structure_key(base.replace(seed=3).with_param("k", 5))
    assert method.structure_key(base) != method.structure_key(base.replace(batch_size=128))
    assert method.structure_key(base) != method.structure_key(base.with_param("aux_k", 4))   # structural
    gba = TrainConfig(method="gba", width=32, steps=10)
    assert get_method("gba").structure_key(gba) != get_method("gba").structure_key(gba.with_param("decoder", "tied"))


def test_the_sweep_runner_groups_by_the_method_structure_key():
    """The one rule: a cell's shape key is d and its method's structure_key, nothing else."""
    from polysemy.experiments.spec import Axis, SweepSpec

    spec = SweepSpec(name="t", train=TrainConfig(method="topk", width=32, steps=10, params={"k": 2}),
                     axes=(Axis("train.batch_size", values=(64, 128)), Axis("train.k", values=(2, 3))))
    cells = spec.expand()
    for c in cells:
        assert c.shape_key == (int(c.world.d),) + get_method("topk").structure_key(c.train)
    assert len({c.shape_key for c in cells}) == 2        # k varies within a stack, the batch size does not


def test_bench_defaults_colours_and_the_docs_table():
    assert registry.bench_methods() == ("gba", "ba", "topk", "batchtopk", "relu-l1", "jumprelu")
    colors = registry.method_colors()
    assert colors["gba"] == "tab:red" and colors["gba-tied"] == "tab:pink" and colors["topk-tied"] == "tab:olive"
    assert "gba-paper" not in colors        # declarations are not inherited
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sae.md").read_text(encoding="utf-8")
    assert f"{registry.TABLE_START}\n{registry.method_table()}\n{registry.TABLE_END}" in docs, \
        "docs/sae.md's method table is stale: run polysemy.sae.registry.write_method_table('docs/sae.md')"


@dataclasses.dataclass(frozen=True)
class _ToyParams(TopKParams):
    toy_knob: float = param(0.5, "a knob only the toy method has")
    toy_shape: int = param(1, "a structural knob", structural=True, flag="toy-shape-flag")


def test_a_new_method_reaches_every_list_without_another_edit(monkeypatch, capsys):
    """A method registered anywhere (here: in this test) gets its flags, its stack key and a place in
    polysemy train, llm-bench, peers and the methods sweep; nothing else is edited."""
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))

    @register_method("toy-method")
    class Toy(TopK):
        Params = _ToyParams

    assert issubclass(_ToyParams, MethodParams) and "toy-method" in list_methods()
    knobs = method_knobs()
    assert knobs["toy-knob"].methods == ("toy-method",) and knobs["toy-shape-flag"].names == ("toy_shape",)
    assert "toy-method" in knobs["k"].methods
    cfg = TrainConfig(method="toy-method", width=64, steps=2)
    assert get_method("toy-method").structure_key(cfg) != get_method("toy-method").structure_key(
        cfg.with_param("toy_shape", 2))
    assert get_method("toy-method").structure_key(cfg) == get_method("toy-method").structure_key(
        cfg.with_param("toy_knob", 0.7))
    monkeypatch.setenv("COLUMNS", "400")       # no wrapping inside method names
    parser = build_parser()
    helps = {name: " ".join(action.format_help().split())
             for action in parser._subparsers._group_actions for name, action in action.choices.items()}
    assert "--toy-knob X a knob only the toy method has; default 0.5 [toy-method]" in helps["train"]
    for command in ("train", "llm-bench", "peers", "sweep"):
        assert "toy-method" in helps[command], command
    assert Toy.declared("bench_order") is None and Toy.declared("color") is None   # opt-in, black


def test_unregister_method_takes_a_method_and_its_flags_out_again():
    """``registry.unregister_method`` (used by tests/test_extending_examples.py): the list and the
    generated flags are as before, and the name can be registered again with other knobs."""
    before, knobs = list_methods(), set(method_knobs())

    @register_method("toy-gone")
    class Gone(TopK):
        Params = _ToyParams

    assert "toy-gone" in list_methods() and "toy-knob" in method_knobs()
    registry.unregister_method("toy-gone")
    assert list_methods() == before and set(method_knobs()) == knobs
    with pytest.raises(ConfigError, match="'toy-gone' is not registered"):
        registry.unregister_method("toy-gone")

    @register_method("toy-gone")
    class Again(TopK):
        Params = TopKParams

    try:
        assert "toy-gone" in method_knobs()["k"].methods and "toy-knob" not in method_knobs()
    finally:
        registry.unregister_method("toy-gone")
    assert list_methods() == before
