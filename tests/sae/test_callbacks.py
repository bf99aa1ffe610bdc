"""The training loop's callbacks (polysemy/sae/callbacks.py): what they see, how they stop a run, that
snapshots are the states of runs stopped there, that the history is the one the loop wrote before it was
split into callbacks, and that logged recovery is ``theory.metrics``'s."""

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from polysemy.cli import main
from polysemy.errors import ConfigError
from polysemy.sae import NonFiniteError, TrainConfig, train, train_stacked
from polysemy.sae.callbacks import Callback, Snapshots, TensorBoardLogger
from polysemy.simulate import World, WorldConfig
from polysemy.theory import metrics

from .conftest import cfg_for

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "trainer_history.json"


def states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class Recorder(Callback):
    def __init__(self):
        self.calls, self.log_steps, self.rows = [], [], []

    def on_train_start(self, state):
        self.calls.append(("start", state.step))

    def on_step_end(self, state):
        self.calls.append(("step", state.step))

    def on_log(self, state, step):
        self.log_steps.append(step)
        self.rows.append(dict(state.rows[0]))

    def on_train_end(self, state):
        self.calls.append(("end", state.step, state.error))


def test_a_callback_sees_every_step_and_every_log_point(tiny_world):
    rec = Recorder()
    result = train(cfg_for("gba", steps=45), tiny_world.stream(64, seed=0), 16, truth=tiny_world.V,
                   progress=False, callbacks=[rec])
    assert rec.calls == [("start", 0)] + [("step", k) for k in range(1, 46)] + [("end", 45, None)]
    assert rec.log_steps == [10, 20, 30, 40, 45] == list(result.history["step"])
    # at on_log a user callback sees the row the default callbacks filled (recovery included)
    assert {"loss", "l0", "frr_0.9", "mmcs", "bias_at_bound"} <= set(rec.rows[-1])
    assert rec.rows[-1]["loss"] == result.history["loss"].iloc[-1]


def test_a_callback_adds_history_columns(tiny_batches):
    class Column(Callback):
        def on_log(self, state, step):
            for g, row in state.rows.items():
                row["lr_scale"] = 1.0 - step / 100

    result = train(cfg_for("topk"), iter(tiny_batches), 16, progress=False, callbacks=[Column()])
    assert list(result.history.columns)[-1] == "lr_scale"
    assert list(result.history["lr_scale"]) == [0.9, 0.8, 0.7, 0.6]


@pytest.mark.parametrize("hook", ["on_step_end", "on_log"])
def test_stopping_from_a_callback_stops_the_loop(hook, tiny_batches):
    class StopAt(Callback):
        def __init__(self, at):
            self.at, self.seen = at, []

        def on_step_end(self, state):
            self.seen.append(state.step)
            if hook == "on_step_end" and state.step == self.at:
                state.stop("enough")

        def on_log(self, state, step):
            if hook == "on_log" and step == self.at:
                state.stop("enough")

    at = 25 if hook == "on_step_end" else 20
    cb = StopAt(at)
    cfg = cfg_for("gba")
    result = train(cfg, iter(tiny_batches), 16, progress=False, callbacks=[cb])
    assert result.steps == at and cb.seen[-1] == at and result.stop_reason == "enough"
    assert result.samples == at * 64 and list(result.history["step"]) == [10, 20]
    # the same state as a run whose data ran out there (same config, so the same lr schedule)
    cut = train(cfg, iter(tiny_batches[:at]), 16, progress=False)
    assert cut.stop_reason == "data exhausted" and states_equal(result.model.stack, cut.model.stack)


def test_stop_model_freezes_one_model_of_a_stack(tiny_world):
    class FreezeFirst(Callback):
        def on_log(self, state, step):
            if step == 20:
                state.stop_model(0, "frozen")

    cfgs = [cfg_for("topk", seed=s) for s in range(2)]
    streams = [tiny_world.stream(64, seed=10 + s) for s in range(2)]
    frozen, other = train_stacked(cfgs, streams, 16, progress=False, callbacks=[FreezeFirst()])
    assert (frozen.stop_reason, frozen.steps, frozen.samples) == ("frozen", 20, 20 * 64)
    assert list(frozen.history["step"]) == [10, 20] and list(other.history["step"]) == [10, 20, 30, 40]
    alone = train(cfgs[0], itertools.islice(tiny_world.stream(64, seed=10), 20), 16, progress=False)
    assert states_equal(frozen.model.stack, alone.model.stack)


def test_on_train_end_runs_when_training_fails(tiny_batches):
    rec = Recorder()
    batches = [b.clone() for b in tiny_batches[:10]]
    batches[7][3, 2] = float("nan")
    with pytest.raises(NonFiniteError):
        train(cfg_for("gba"), iter(batches), 16, progress=False, callbacks=[rec])
    assert rec.calls[-1][0] == "end" and isinstance(rec.calls[-1][2], NonFiniteError)


def test_callbacks_must_be_callbacks(tiny_batches):
    with pytest.raises(ConfigError, match="callbacks must have at least one of"):
        train(cfg_for("gba"), iter(tiny_batches), 16, progress=False, callbacks=[object()])
    with pytest.raises(ConfigError, match="callbacks must be a list"):
        train(cfg_for("gba"), iter(tiny_batches), 16, progress=False, callbacks=Recorder())


# -- snapshots ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["gba", "topk", "ba-theory"])
def test_snapshots_equal_runs_stopped_at_those_steps(method, tiny_batches):
    """Bit for bit on the CPU: a snapshot only reads the models, and a run stopped at step k (its data
    cut after k batches) is the same computation up to there, lr schedule included (gba decays over
    the last 20% of the 40 steps, so the steps 35 and 40 are in the decay)."""
    cfg = cfg_for(method)
    snaps = Snapshots([0, 7, 20, 35, 40, 99])
    full = train(cfg, iter(tiny_batches), 16, progress=False, callbacks=[snaps])
    assert list(snaps.records) == [0, 7, 20, 35, 40]      # 99 is past the end: not taken
    for step, models in snaps.records.items():
        if step == 0:    # the initialisation: a run of no steps on the same first batch
            stopped = train(cfg.replace(steps=0), iter(tiny_batches), 16, progress=False)
        else:
            stopped = train(cfg, iter(tiny_batches[:step]), 16, progress=False)
            assert stopped.steps == step
        assert states_equal(models[0].stack, stopped.model.stack), step
    assert states_equal(snaps.records[40][0].stack, full.model.stack)


def test_snapshots_of_a_stack_equal_single_runs(tiny_world):
    cfgs = [cfg_for("gba", seed=s, lr=1e-3 * (1 + s)) for s in range(3)]
    snaps = Snapshots([15], fn=lambda state: [state.sae(g).W_dec.clone() for g in range(state.G)])
    train_stacked(cfgs, [tiny_world.stream(64, seed=10 + s) for s in range(3)], 16, progress=False,
                  callbacks=[snaps])
    for s, cfg in enumerate(cfgs):
        alone = train(cfg, itertools.islice(tiny_world.stream(64, seed=10 + s), 15), 16, progress=False)
        assert torch.equal(snaps.records[15][s], alone.model.W_dec)


# -- the history and recovery logging ---------------------------------------------------------------

def test_history_equals_the_pre_callback_trainer():
    """The fixture holds the histories the trainer wrote before it was split into callbacks (commit
    2128c1f; tests/fixtures/make_trainer_history.py). Same columns in the same order, same steps and
    samples. Numbers: equal here bit for bit (checked when the fixture was made) but compared to 1e-6
    relative, since torch's CPU kernels may round differently on another machine; ``mmcs`` to 1e-6
    absolute because it is now summed in float64 by theory.metrics (it was a float32 mean: a change
    below 1e-7 on these runs), FRR exactly (no cosine lies within float32 rounding of 0.9 or 0.99)."""
    data = json.loads(FIXTURE.read_text())
    world = World(WorldConfig(**data["world"]))
    for name, case in data["cases"].items():
        cfg = TrainConfig.from_dict(case["config"])
        history = train(cfg, world.stream(cfg.batch_size, seed=data["data_seed"]), world.d, truth=world.V,
                        progress=False).history.drop(columns="seconds")
        assert list(history.columns) == case["columns"], name
        for column in case["columns"]:
            want = np.array([row[column] for row in case["rows"]], dtype=float)
            got = history[column].to_numpy(dtype=float)
            if column in ("step", "samples") or column.startswith("frr_"):
                assert np.array_equal(got, want), (name, column)
            elif column == "mmcs":
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=f"{name} {column}")
            else:
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=f"{name} {column}")


@pytest.mark.parametrize("method", ["gba", "topk"])
def test_recovery_logging_is_theory_metrics(method, tiny_world):
    cfg = cfg_for(method, steps=30)
    snaps = Snapshots([10, 20, 30])
    result = train(cfg, tiny_world.stream(64, seed=0), 16, truth=tiny_world.V, progress=False, callbacks=[snaps])
    for _, row in result.history.iterrows():
        model = snaps.records[int(row["step"])][0]
        expected = metrics.recovery_metrics(model.W_dec, tiny_world.V)
        assert row["frr_0.9"] == expected["frr"]["0.9"] and row["frr_0.99"] == expected["frr"]["0.99"]
        assert row["mmcs"] == expected["mmcs"]


# -- TensorBoard ---------------------------------------------------------------------------------------

class FakeWriter:
    def __init__(self):
        self.scalars, self.flushed, self.closed = [], 0, 0

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        self.flushed += 1

    def close(self):
        self.closed += 1


def test_tensorboard_logger_writes_every_numeric_history_column(tiny_world):
    writer = FakeWriter()
    result = train(cfg_for("gba", steps=20), tiny_world.stream(64, seed=0), 16, truth=tiny_world.V,
                   progress=False, callbacks=[TensorBoardLogger(writer=writer)])
    logged = {(tag, step): value for tag, value, step in writer.scalars}
    for _, row in result.history.iterrows():
        for column in result.history.columns:
            if column != "step":
                assert logged[(column, int(row["step"]))] == row[column]
    assert writer.flushed == 1 and writer.closed == 0   # a writer passed in is the caller's to close


def test_tensorboard_logger_tags_each_model_of_a_stack(tiny_world):
    writer = FakeWriter()
    train_stacked([cfg_for("topk", seed=s, steps=10) for s in range(2)], tiny_world.stream(64, seed=0), 16,
                  progress=False, callbacks=[TensorBoardLogger(writer=writer)])
    assert {"model0/loss", "model1/loss"} <= {tag for tag, _, _ in writer.scalars}


def _without_tensorboard(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "torch.utils.tensorboard" or name.startswith("tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_tensorboard_missing_is_one_clear_line(tmp_path, monkeypatch, capsys):
    _without_tensorboard(monkeypatch)
    with pytest.raises(ConfigError, match=r"needs the tensorboard package: pip install 'polysemy\[tensorboard\]'"):
        TensorBoardLogger(tmp_path / "tb")
    assert main(["train", "--n", "32", "--d", "16", "--s", "2", "--steps", "10", "--quiet",
                 "--tensorboard", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polysemy: error: TensorBoard logging") and "\n" not in err
    assert not (tmp_path / "tb").exists()


def test_train_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    out = tmp_path / "tb"
    assert main(["train", "--n", "32", "--d", "16", "--s", "2", "--steps", "20", "--log-every", "10",
                 "--quiet", "--eval-samples", "256", "--tensorboard", str(out)]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out))
    events.Reload()
    assert [e.step for e in events.Scalars("frr_0.9")] == [10, 20]


class SlowLog(Callback):
    """Spends a fixed time at every log point."""

    def __init__(self, seconds):
        self.seconds = seconds

    def on_log(self, state, step):
        time.sleep(self.seconds)


def test_log_point_callbacks_are_not_counted_in_the_training_clock():
    """Four log points of 0.25 s each: a clock that counted them would read at least 1 s."""
    data = World(WorldConfig(n=16, d=8, s=2, seed=0)).stream(64, seed=1)
    result = train(cfg_for("topk", steps=40, log_every=10), data, 8, progress=False, callbacks=[SlowLog(0.25)])
    assert result.seconds < 0.9, result.seconds
    assert result.history["seconds"].iloc[-1] <= result.seconds + 1e-9
    assert result.history["seconds"].is_monotonic_increasing
