"""`make bench` writes its table and JSON; the self-check section times a week
against the floor (the comparisons need environments/bench.txt, so they run in
`make bench` itself, not here)."""

import json

from .conftest import BIN, run


def test_bench_times_a_week_against_the_floor(tmp_path):
    result = run(
        [str(BIN / "python"), "scripts/bench.py", "--sections", "weeks", "--weeks", "3"]
        + ["--repeats", "1", "--out", str(tmp_path)],
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "benchmarks.json").read_text())
    (row,) = report["weeks"]
    assert row["week"] == 3 and row["floor_s"] > 0 and row["self_check_s"] > 0
    # the ratio is taken before the times are rounded to 0.01 s
    assert abs(row["ratio"] - row["self_check_s"] / row["floor_s"]) < 0.02
    table = (tmp_path / "benchmarks.md").read_text()
    assert "| 3 | week03_adversarial |" in table and report["machine"]["cores"] >= 1


def test_bench_refuses_unknown_sections(tmp_path):
    result = run(
        [str(BIN / "python"), "scripts/bench.py", "--sections", "speed", "--out", str(tmp_path)]
    )
    assert result.returncode == 2 and "unknown sections ['speed']" in result.stderr
