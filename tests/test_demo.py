"""``polysemy demo`` smoke test with a tiny training budget: report, table rows and the figure."""

from polysemy.cli import main


def test_demo_prints_conditions_table_and_writes_figure(tmp_path, capsys):
    assert main(["demo", "--steps", "20", "--batch-size", "128", "--width", "64", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    for fragment in ("Regime", "Resonance band", "H3", "V1", "FRR.9", "MCC", "dead"):
        assert fragment in out
    table = out.split("== Recovery")[1]
    rows = [line for line in table.splitlines() if "%" in line]
    names = [r.split("  ")[0] for r in rows]
    assert names[0].startswith("oracle") and any(n.startswith("random init") for n in names)
    assert any(n.startswith("TopK") for n in names) and any(n.startswith("GBA") for n in names)
    assert rows[0].split()[3:6] == ["100.0%", "100.0%", "100.0%"]  # the true dictionary is recovered
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_rejects_an_unknown_preset(capsys):
    assert main(["demo", "--preset", "no-such-world"]) == 2
    assert "preset must be one of" in capsys.readouterr().err


def test_demo_json_is_one_object_with_every_table_row(tmp_path, capsys):
    import json

    assert main(["demo", "--steps", "20", "--batch-size", "128", "--width", "64", "--out", str(tmp_path),
                 "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 256 and report["width"] == 64 and report["steps"] == 20
    assert set(report["models"]) == {"oracle (true V)", "random init (GBA)", "TopK (k = 3)", "GBA (defaults)"}
    assert report["models"]["oracle (true V)"]["frr"]["0.99"] == 1.0
    assert set(report["check"]["conditions"]) >= {"H1", "H2", "H3", "V1"}
    assert (tmp_path / "demo.png").exists()


def test_demo_figure_shows_the_thresholds_and_the_setting(tmp_path):
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from polysemy.demo import _figure
    from polysemy.simulate import get_preset

    captured = {}
    original = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        captured["fig"] = fig
        return original(fig, *args, **kwargs)

    results = {"TopK (k = 3)": {"best_cos": np.linspace(0.2, 1.0, 50),
                                "history": pd.DataFrame({"step": [1, 2], "frr_0.9": [0.0, 0.5]})}}
    plt.Figure.savefig = keep
    try:
        _figure(results, tmp_path, "theorem-uniform", get_preset("theorem-uniform"), 512, 5000)
    finally:
        plt.Figure.savefig = original
    fig = captured["fig"]
    left = fig.axes[0]
    texts = [t.get_text() for t in left.texts]
    assert "cos = 0.9" in texts and "cos = 0.99" in texts
    assert left.get_ylim()[0] >= 0.5
    title = fig._suptitle.get_text()
    for fragment in ("n = 256", "d = 64", "s = 3", "width 512", "true k"):
        assert fragment in title
