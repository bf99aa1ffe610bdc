"""The worked examples of docs/extending.md, run from the page itself so that the docs cannot rot.

Every ```python block of the page is preceded by ``<!-- example: NAME -->`` (run here) or
``<!-- not run -->`` (an edit to the package itself). The blocks of one NAME run in order, in one fresh
namespace; their ``assert`` lines are the checks. What an example registers (world kinds, a sweep, a
figure, a method) is removed afterwards, so that no other test sees it.
"""

import re
from pathlib import Path

import matplotlib
import pytest
import torch

PAGE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
EXAMPLES = ("support", "dictionary", "metric", "callback", "spec", "figure", "method")
MARKER = re.compile(r"<!-- (example: (?P<name>[\w-]+)|not run) -->\n```python\n(?P<code>.*?)```", re.S)


def _blocks() -> list[tuple[str | None, str]]:
    """(example name or None for "not run", code) of every marked python block, in page order."""
    return [(m.group("name"), m.group("code")) for m in MARKER.finditer(PAGE.read_text(encoding="utf-8"))]


def _example(name: str) -> str:
    return "\n".join(code for block, code in _blocks() if block == name)


def test_every_python_block_of_the_page_is_marked_and_every_example_is_there():
    text = PAGE.read_text(encoding="utf-8")
    assert len(_blocks()) == text.count("```python"), "a ```python block lacks its <!-- example/not run --> marker"
    assert sorted({name for name, _ in _blocks() if name}) == sorted(EXAMPLES)
    assert "tests/test_extending_examples.py" in text


@pytest.fixture
def clean_registries():
    """Undo what an example registers: world kinds, sweeps, figures, methods."""
    from polysemy.experiments.figures import FIGURES
    from polysemy.experiments.sweeps import SWEEPS
    from polysemy.sae import registry
    from polysemy.simulate.registry import DICTIONARIES, SUPPORTS

    before = {id(reg): set(reg.names()) for reg in (SUPPORTS, DICTIONARIES)}
    sweeps, figures, methods = set(SWEEPS), set(FIGURES), registry.list_methods()
    try:
        yield
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
        for reg in (SUPPORTS, DICTIONARIES):
            for name in set(reg.names()) - before[id(reg)]:
                reg.unregister(name)
        for name in set(SWEEPS) - sweeps:
            del SWEEPS[name]
        for name in set(FIGURES) - figures:
            del FIGURES[name]
        for name in set(registry.list_methods()) - set(methods):
            registry.unregister_method(name)
        assert registry.list_methods() == methods


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_example_runs(name, clean_registries, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # the examples' mkdtemp() folders land here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    matplotlib.use("Agg")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = _example(name)
        assert code, f"docs/extending.md has no example {name!r}"
        exec(compile(code, f"docs/extending.md (example: {name})", "exec"), {"__name__": f"extending_{name}"})
    finally:
        torch.set_num_threads(threads)


def test_the_examples_leave_the_registries_as_they_were():
    from polysemy.experiments.figures import FIGURES
    from polysemy.sae.registry import list_methods, method_knobs
    from polysemy.simulate import WorldConfig
    from polysemy.simulate.registry import DICTIONARIES, SUPPORTS, param_table

    assert "blocks" not in SUPPORTS and "clustered" not in DICTIONARIES and "width-tiny" not in FIGURES
    assert "trec" not in list_methods() and "trec-theta" not in method_knobs()
    assert "block_size" not in param_table() and WorldConfig().config_hash() == "7bca21a20549bc22"


def test_extra_metrics_are_stored_beside_the_recovery_metrics_and_leave_the_cell_ids_alone(tmp_path):
    """``train_and_evaluate_group(..., extra_metrics=...)``, the hook the metric example uses."""
    from polysemy.experiments.evaluation import train_and_evaluate_group
    from polysemy.experiments.spec import SweepSpec
    from polysemy.sae import TrainConfig
    from polysemy.simulate import WorldConfig

    spec = SweepSpec(name="x", world=WorldConfig(n=8, d=4, s=1), seeds=(0, 1),
                     train=TrainConfig(method="topk", width=8, steps=5, batch_size=16, log_every=5, params={"k": 1}),
                     eval_samples=64)
    cells = spec.expand()
    plain = train_and_evaluate_group(cells)
    extra = train_and_evaluate_group(cells, extra_metrics={"width": lambda model, world: int(model.W_dec.shape[0]),
                                                           "n": lambda model, world: world.n})
    for a, b in zip(plain, extra):
        assert b["metrics"] == {**a["metrics"], "width": 8, "n": 8}
    assert [c.cell_id for c in cells] == [c.cell_id for c in spec.expand()]
