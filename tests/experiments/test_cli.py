"""``polysemy sweep`` and ``polysemy figures`` on the command line: JSON summary, resume, bad names."""

import json

from polysemy.cli import main

KEYS = {"cells_total", "cells_done", "cells_computed", "seconds", "store"}


def test_sweep_json_summary_then_resume_computes_nothing(tmp_path, capsys):
    out = tmp_path / "smoke"
    assert main(["sweep", "smoke", "--quick", "--json", "--out", str(out)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert KEYS <= set(first)
    assert first["cells_total"] == first["cells_done"] == first["cells_computed"] == 4
    assert first["store"] == str(out) and len(list((out / "cells").glob("*.json"))) == 4
    assert main(["sweep", "smoke", "--quick", "--json", "--out", str(out)]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["cells_done"] == 4 and second["cells_computed"] == 0


def _one_line_error(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("polysemy: error:") and fragment in err


def test_unknown_names_and_bad_options_exit_2_with_one_line(capsys, tmp_path):
    _one_line_error(capsys, ["sweep", "no-such-sweep"], "sweep name must be one of")
    _one_line_error(capsys, ["figures", "no-such-figure", "--out", str(tmp_path)], "figure name must be one of")
    _one_line_error(capsys, ["sweep", "smoke", "--jobs", "0", "--out", str(tmp_path)], "--jobs")
    assert not any(tmp_path.iterdir())  # nothing was written for bad input
