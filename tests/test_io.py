"""``polysemy.io``: atomic writes leave the old file or the new one, never half of one; one JSON conversion."""

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polysemy.io import (atomic_path, atomic_write, save_figure_atomic, temporary_path, to_jsonable,
                         write_bytes_atomic, write_json_atomic, write_text_atomic)


class Boom(Exception):
    pass


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.mark.parametrize("mode, old, new", [("w", "old text", "new te"), ("wb", b"old bytes", b"new b")])
def test_an_exception_mid_write_leaves_the_target_untouched_and_no_temporary(tmp_path, mode, old, new):
    path = tmp_path / "f"
    (path.write_bytes if isinstance(old, bytes) else path.write_text)(old)
    with pytest.raises(Boom):
        with atomic_write(path, mode) as fh:
            fh.write(new)
            fh.flush()
            assert temporary_path(path).exists() and path.read_bytes()[:3] == b"old"  # not there yet
            raise Boom
    assert (path.read_bytes() if isinstance(old, bytes) else path.read_text()) == old
    assert _leftovers(tmp_path) == []


def test_a_failed_write_creates_no_target(tmp_path):
    path = tmp_path / "sub" / "new.json"
    with pytest.raises(Boom):
        with atomic_write(path) as fh:
            fh.write('{"half": ')
            raise Boom
    assert not path.exists() and _leftovers(path.parent) == []


def test_a_failed_replace_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    write_text_atomic(path, "old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_text_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


def test_helpers_write_what_they_are_given(tmp_path):
    write_text_atomic(tmp_path / "a" / "t.txt", "héllo")
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    write_json_atomic(tmp_path / "c.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.json").read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}'


def test_atomic_write_refuses_appending_and_reading_modes(tmp_path):
    for mode in ("a", "r+", "x", "r"):
        with pytest.raises(ValueError, match="mode"):
            with atomic_write(tmp_path / "f", mode):
                pass


def test_atomic_path_replaces_a_folder_and_keeps_one_on_failure(tmp_path):
    target = tmp_path / "ck"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "x").write_text("1")
    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "x").write_text("half")
            raise Boom
    assert (target / "x").read_text() == "1"
    with atomic_path(target) as tmp:       # an existing folder is replaced whole
        tmp.mkdir()
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["y"] and _leftovers(tmp_path) == []


def test_atomic_path_keep_existing_keeps_what_another_writer_finished(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    (target / "theirs").write_text("t")
    with atomic_path(target, keep_existing=True) as tmp:
        tmp.mkdir()
        (tmp / "ours").write_text("o")
    assert [p.name for p in target.iterdir()] == ["theirs"] and _leftovers(tmp_path) == []


def test_save_figure_atomic_keeps_the_format_of_the_name(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = save_figure_atomic(fig, tmp_path / "f.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and _leftovers(tmp_path) == []
    assert not plt.fignum_exists(fig.number)   # closed


# -- JSON ------------------------------------------------------------------------------------------------
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**60, 2**60), st.text(max_size=8),
                        st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_plain_json_values_are_a_fixed_point_and_round_trip(value):
    assert to_jsonable(value) == value
    assert to_jsonable(value, strict=True) == value
    assert json.loads(json.dumps(to_jsonable(value))) == value


def _numpyfy(value):
    """The same structure with numpy scalars, tuples and numpy arrays where they fit."""
    if isinstance(value, dict):
        return {k: _numpyfy(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_numpyfy(v) for v in value]
        if value and all(type(v) is float for v in value):
            return np.array(value)
        return tuple(items)
    if type(value) is float:
        return np.float64(value)
    if type(value) is int and abs(value) < 2**62:
        return np.int64(value)
    if type(value) is bool:
        return np.bool_(value)
    return value


@settings(max_examples=60, deadline=None)
@given(json_values)
def test_numpy_and_tuples_convert_back_to_the_plain_structure(value):
    converted = to_jsonable(_numpyfy(value))
    assert converted == value
    assert json.dumps(converted, sort_keys=True) == json.dumps(value, sort_keys=True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=6))
def test_strict_turns_exactly_the_non_finite_floats_into_none(xs):
    for container in (xs, np.array(xs, dtype=np.float32), torch.tensor(xs, dtype=torch.float32)):
        strict = to_jsonable(container, strict=True)
        loose = to_jsonable(container)
        assert [s is None for s in strict] == [not math.isfinite(x) for x in xs]
        assert [a for a in strict if a is not None] == [b for b in loose if math.isfinite(b)]
        json.dumps(strict, allow_nan=False)      # strict JSON


def test_the_other_types_it_converts():
    @dataclasses.dataclass
    class Point:
        x: float
        tags: tuple

    from polysemy.sae import TrainConfig

    cfg = TrainConfig(method="topk", width=8, params={"k": 2})
    out = to_jsonable({1: Path("/a/b"), "p": Point(np.float32(0.5), ("a",)), "cfg": cfg, "s": {3},
                       "t": torch.tensor(2.5), "nan": float("nan")})
    assert out["1"] == "/a/b" and out["p"] == {"x": 0.5, "tags": ["a"]} and out["s"] == [3]
    assert out["cfg"] == cfg.to_dict() and out["t"] == 2.5 and math.isnan(out["nan"])
    assert to_jsonable(float("inf"), strict=True) is None and to_jsonable(np.float64("nan"), strict=True) is None
