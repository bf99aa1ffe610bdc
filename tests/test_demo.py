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
