"""A sweep on a saved SAELens world (SAELensWorldConfig): train.* axes and seeds, the world fixed."""

import pytest

from polysemy.errors import ConfigError
from polysemy.experiments.runner import run_sweep
from polysemy.experiments.spec import Axis, SweepSpec
from polysemy.experiments.store import load_results
from polysemy.sae import TrainConfig
from polysemy.simulate import SAELensWorldConfig


def test_a_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        SAELensWorldConfig(folder=str(tmp_path / "nothing"))


@pytest.mark.filterwarnings("ignore:this SAELens dictionary:UserWarning")
def test_sweep_runs_on_a_saved_saelens_world(tmp_path):
    synthetic = pytest.importorskip("sae_lens.synthetic")
    model = synthetic.SyntheticModel(synthetic.SyntheticModelConfig(num_features=24, hidden_dim=8, seed=0))
    model.save(tmp_path / "world")
    ref = SAELensWorldConfig(folder=str(tmp_path / "world"))
    assert (ref.n, ref.d) == (24, 8)
    spec = SweepSpec(name="saelens", world=ref,
                     train=TrainConfig(method="topk", width=24, steps=5, batch_size=32, params={"k": 2}),
                     axes=(Axis("train.lr", values=(1e-3, 3e-3)),), seeds=(1, 2), eval_samples=128)
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    cells = spec.expand()
    assert len(cells) == 4 and all(c.world == ref for c in cells)
    summary = run_sweep(spec, tmp_path / "store", progress=False)
    assert summary.cells_computed == 4 and summary.cells_done == 4
    df = load_results(tmp_path / "store")
    assert len(df) == 4 and df["metrics.mcc"].between(0, 1).all() and "metrics.f1" in df
    bad = SweepSpec(name="bad", world=ref, train=spec.train, axes=(Axis("world.d", values=(4, 8)),))
    with pytest.raises(ConfigError):
        bad.expand()
