"""Checkpoints never destroy what they did not write, and every load error is a one-line ConfigError."""

import json

import pytest

from polysemy.errors import ConfigError
from polysemy.sae import TrainConfig, train
from polysemy.sae.checkpoint import export_saelens, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def result(tiny_batches):
    cfg = TrainConfig(method="topk", width=48, steps=5, batch_size=64, log_every=5, params={"k": 2})
    return train(cfg, iter(tiny_batches), 16, progress=False)


@pytest.fixture
def saved(result, tmp_path):
    return save_checkpoint(result, tmp_path / "ck")


def test_a_folder_of_user_files_is_refused_and_kept(result, tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("precious")
    for save in (lambda: save_checkpoint(result, user), lambda: export_saelens(result, user)):
        with pytest.raises(ConfigError, match="holds other files"):
            save()
    assert [p.name for p in user.iterdir()] == ["notes.txt"] and (user / "notes.txt").read_text() == "precious"


def test_an_existing_file_is_refused_and_not_renamed(result, tmp_path):
    target = tmp_path / "ck"
    target.write_text("a file")
    with pytest.raises(ConfigError, match="existing file"):
        save_checkpoint(result, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"] and target.read_text() == "a file"


def _damage_config(folder, **changes):
    meta = json.loads((folder / "config.json").read_text())
    meta.update(changes)
    (folder / "config.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("damage, needle", [
    (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:100]), "truncated"),
    (lambda f: (f / "config.json").write_text("{not json"), "not valid JSON"),
    (lambda f: _damage_config(f, model_class="Nope"), "model_class"),
    (lambda f: _damage_config(f, width=96), "does not match"),
    (lambda f: _damage_config(f, structure={"bogus": 1}), "config.json"),
    (lambda f: (f / "optimizer.safetensors").write_bytes(b"\x00" * 3), "truncated"),
    (lambda f: (f / "history.json").write_text("[{"), "not valid JSON"),
])
def test_damaged_checkpoints_are_config_errors(saved, damage, needle):
    damage(saved)
    with pytest.raises(ConfigError, match=needle) as info:
        load_checkpoint(saved)
    assert "\n" not in str(info.value)


def test_a_save_killed_between_its_renames_is_finished_on_load(result, tmp_path):
    """The old folder was moved aside and the complete new one not yet moved in: load restores the new."""
    import os

    ck = save_checkpoint(result, tmp_path / "ck")
    dead = 2 ** 22 + 12345                              # above the default pid_max: no such process
    os.replace(ck, tmp_path / f"ck.old-{dead}")
    newer = save_checkpoint(result, tmp_path / "staging")
    _damage_config(newer, steps=99)
    os.replace(newer, tmp_path / f"ck.tmp-{dead}")
    assert load_checkpoint(tmp_path / "ck").steps == 99
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
