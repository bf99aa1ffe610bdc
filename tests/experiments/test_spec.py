"""Sweep expansion and cell ids: stable, collision-free, and resolved exactly as documented."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polysemy.errors import ConfigError
from polysemy.experiments.spec import Axis, SweepSpec, cell_id_for
from polysemy.sae import TrainConfig
from polysemy.sae.registry import get_method
from polysemy.simulate import World, WorldConfig

BASE_WORLD = WorldConfig(n=32, d=8, s=2)
BASE_TRAIN = TrainConfig(method="gba", width=16, steps=10, batch_size=32, params={"ltf": 0.01})

ds = st.lists(st.integers(4, 40), min_size=1, max_size=4, unique=True)
lrs = st.lists(st.sampled_from([1e-4, 3e-4, 1e-3, 3e-3, 1e-2]), min_size=1, max_size=3, unique=True)
seeds = st.lists(st.integers(0, 50), min_size=1, max_size=3, unique=True)


def _spec(d_values, lr_values, seed_values, name="t"):
    return SweepSpec(name=name, world=BASE_WORLD, train=BASE_TRAIN,
                     axes=(Axis("world.d", values=tuple(d_values)), Axis("train.lr", values=tuple(lr_values))),
                     seeds=tuple(seed_values), eval_samples=256)


@given(ds, lrs, seeds)
def test_expansion_is_the_cartesian_product_with_distinct_stable_ids(d_values, lr_values, seed_values):
    spec = _spec(d_values, lr_values, seed_values)
    cells = spec.expand()
    assert len(cells) == spec.size() == len(d_values) * len(lr_values) * len(seed_values)
    ids = [c.cell_id for c in cells]
    assert len(set(ids)) == len(ids)                                   # collision-free
    assert ids == [c.cell_id for c in spec.expand()]                   # stable within a process
    again = SweepSpec.from_json(spec.to_json())                        # and through JSON
    assert ids == [c.cell_id for c in again.expand()]
    # the sweep's name and the axis order do not change what a cell is
    renamed = SweepSpec(name="other", world=BASE_WORLD, train=BASE_TRAIN,
                        axes=(Axis("train.lr", values=tuple(lr_values)), Axis("world.d", values=tuple(d_values))),
                        seeds=tuple(seed_values), eval_samples=256)
    assert sorted(ids) == sorted(c.cell_id for c in renamed.expand())
    for c in cells:
        assert c.world.d == c.params["world.d"] and c.train.lr == c.params["train.lr"]
        assert c.train.seed == c.seed and c.world.seed == BASE_WORLD.seed + c.seed
        assert c.cell_id == cell_id_for(c.world, c.train, c.seed, 256)


@given(ds, seeds, st.integers(0, 3))
def test_cells_of_different_sweeps_never_collide_unless_equal(d_values, seed_values, shift):
    a = {c.cell_id: c for c in _spec(d_values, [1e-3], seed_values).expand()}
    b = {c.cell_id: c for c in _spec([d + shift for d in d_values], [1e-3], seed_values).expand()}
    for cid in set(a) & set(b):  # a shared id must mean the same resolved experiment
        assert a[cid].world == b[cid].world and a[cid].train.to_dict() == b[cid].train.to_dict()
    if shift:
        shared_d = set(d_values) & {d + shift for d in d_values}
        assert len(set(a) & set(b)) == len(shared_d) * len(seed_values)


def test_id_covers_every_config_field():
    world, train = BASE_WORLD, BASE_TRAIN
    base = cell_id_for(world, train, 0, 256)
    assert cell_id_for(world.replace(noise=0.01), train, 0, 256) != base
    assert cell_id_for(world, train.with_param("htf", 0.2), 0, 256) != base
    assert cell_id_for(world, train, 1, 256) != base
    assert cell_id_for(world, train, 0, 512) != base
    assert len(base) == 16 and int(base, 16) >= 0


def test_grids_linear_log_integer():
    assert Axis("train.lr", start=1e-4, stop=1e-2, num=3, scale="log").points() == pytest.approx([1e-4, 1e-3, 1e-2])
    assert Axis("world.d", start=4, stop=8, num=3).points() == [4.0, 6.0, 8.0]
    assert Axis("world.d", start=4, stop=5, num=4, integer=True).points() == [4, 5]  # duplicates dropped


def test_derived_parameters_resolve_against_the_world():
    spec = SweepSpec(
        name="derived", world=WorldConfig(n=64, d=32, s=3),
        train=TrainConfig(method="ba", width=16, steps=10, batch_size=32),
        axes=(Axis("delta", values=(0.5,)), Axis("rho", values=(0.25,)), Axis("p_over_f", values=(2.0,)),
              Axis("width_over_n", values=(1.5,))),
        eval_samples=256)
    (cell,) = spec.expand()
    assert (cell.world.d, cell.world.s) == (32, 8)                     # d = delta n, s = rho d
    assert cell.train.width == 96                                      # 1.5 n
    assert cell.train.params["target"] == pytest.approx(2.0 * World(cell.world).f)  # p = 2 f


def test_bundles_set_several_parameters_and_switch_method():
    spec = SweepSpec(
        name="bundles", world=WorldConfig(n=64, d=32, s=3), train=BASE_TRAIN,
        axes=(Axis("method", values=({"label": "TopK 2s", "train.method": "topk", "k_over_s": 2.0},
                                     {"label": "GBA narrow", "train.htf": 0.05})),),
        eval_samples=256)
    topk, gba = spec.expand()
    assert topk.params == {"method": "TopK 2s"} and topk.train.method == "topk" and topk.train.params["k"] == 6
    assert gba.train.method == "gba" and gba.train.params["htf"] == 0.05
    json.dumps(topk.to_dict())  # a cell is JSON-clean


@pytest.mark.parametrize("make_kwargs, fragment", [
    (lambda: dict(axes=(Axis("nonsense", values=(1,)),)), "axis parameter"),
    (lambda: dict(seeds=()), "seeds"),
    (lambda: dict(seeds=(0, 0)), "distinct"),
    (lambda: dict(eval_samples=3), "eval_samples"),
    (lambda: dict(name="bad name!"), "sweep name"),
])
def test_bad_specs_are_one_line_config_errors(make_kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        SweepSpec(**{"world": BASE_WORLD, "train": BASE_TRAIN, **make_kwargs()})


def test_bad_axis_values_surface_as_config_errors():
    with pytest.raises(ConfigError, match="s must be"):
        SweepSpec(world=BASE_WORLD, train=BASE_TRAIN, axes=(Axis("world.s", values=(999,)),)).expand()
    with pytest.raises(ConfigError):
        Axis("world.d", values=(1, 2), start=1, stop=2, num=2)
    with pytest.raises(ConfigError, match="log grid"):
        Axis("train.lr", start=0.0, stop=1.0, num=3, scale="log")


def test_a_method_switched_in_by_an_axis_trains_at_its_own_lr_unless_the_point_sets_one():
    base = TrainConfig(method="gba", width=16, steps=10)          # lr resolved for gba: 1e-2, decaying
    spec = SweepSpec(name="t", world=WorldConfig(n=8, d=4, s=1), train=base,
                     axes=(Axis("method", values=({"label": "topk", "train.method": "topk", "train.k": 2},
                                                  {"label": "topk lr", "train.method": "topk", "train.k": 2,
                                                   "train.lr": 0.05},
                                                  {"label": "gba", "train.method": "gba"})),), seeds=(0,))
    topk, topk_lr, gba = (c.train for c in spec.expand())
    assert (topk.lr, topk.lr_schedule) == (get_method("topk").default_lr, get_method("topk").default_lr_schedule)
    assert topk.lr != base.lr
    assert topk_lr.lr == 0.05
    assert (gba.lr, gba.lr_schedule) == (base.lr, base.lr_schedule)
