"""The self-check on a small lab whose bugs are known: the table names the most
specific failure, raw exceptions and timeouts say where they came from, and
global state changed by one function is reported against it and never leaks
into another function's specs."""

from .fake_lab import make_repo, mlsafety, variant


def rows(output: str) -> dict[str, str]:
    """Function -> its table row."""
    found = {}
    for line in output.splitlines():
        name = line.split(" ", 1)[0]
        if name in ("scale", "lookup", "inner", "outer") and ("PASS" in line or "FAIL" in line):
            found[name] = line
    return found


def test_the_table_names_the_cause_exceptions_and_loops(tmp_path):
    repo = make_repo(tmp_path / "repo")
    buggy = variant(
        tmp_path / "buggy",
        (
            "return np.asarray(x, dtype=float) * factor",
            "return np.asarray(x, dtype=float) * (factor + 1)",
        ),
        ("    _check_key(table, key)\n", ""),
        ("        i += 1\n", "        i += 0\n"),
    )
    result = mlsafety(repo, "test", "1", "--impl", str(buggy), "--functions", "scale,lookup,outer")
    assert result.returncode == 1, result.stdout + result.stderr
    table = rows(result.stdout)
    line = (buggy / "small.py").read_text().splitlines().index("    return table[key]") + 1
    # the diagnostic spec outranks the comparison with a reference collected before it
    assert "scale: 1 * 3 should be 3, got [4.]; multiply by factor" in table["scale"], table
    assert (
        f"KeyError: 'b' raised by your code (small.py line {line}, in lookup; "
        "the spec expected ValueError)" in table["lookup"]
    ), table
    assert "timed out (>3.0s) in inner (called by outer): an endless loop" in table["outer"], table
    # --functions lists every failing spec of each function, one line each
    listing = result.stdout.split("Failing specs of scale:", 1)[1].splitlines()
    assert listing[1].startswith(
        "  test_scale_matches_a_reference: scale: differs from the reference"
    )
    assert listing[2].startswith("  test_scale_closed_form: scale: 1 * 3 should be 3")
    assert "Traceback (most recent call last)" not in result.stdout


def test_global_state_is_restored_and_blamed_on_the_function_that_changed_it(tmp_path):
    repo = make_repo(tmp_path / "repo")
    leaky = variant(
        tmp_path / "leaky",
        (
            "    return np.asarray(x, dtype=float) * factor\n",
            "    import torch\n\n"
            '    np.seterr(divide="ignore")\n'
            "    torch.set_default_dtype(torch.float64)\n"
            "    return np.asarray(x, dtype=float) * factor\n",
        ),
    )
    result = mlsafety(repo, "test", "1", "--impl", str(leaky), "--functions", "scale,lookup")
    table = rows(result.stdout)
    assert "FAIL" in table["scale"] and "PASS" in table["lookup"], result.stdout
    assert (
        "scale: changed numpy's error handling (np.seterr; `with np.errstate(...):` restores "
        "it): divide 'warn' -> 'ignore'; the default dtype (torch.set_default_dtype): "
        "torch.float32 -> torch.float64, and did not restore them" in table["scale"]
    ), table
    listing = result.stdout.split("Failing specs of scale:", 1)[1].splitlines()
    assert listing[3].startswith("  test_scale_leaves_numpy_alone: scale: changed numpy's"), listing
    assert listing[3].endswith("(the spec also failed: assert 'ignore' == 'warn')"), listing


def test_a_module_that_changes_global_state_on_import_is_named(tmp_path):
    repo = make_repo(tmp_path / "repo")
    leaky = variant(
        tmp_path / "leaky",
        ("import numpy as np\n", "import numpy as np\n\nnp.set_printoptions(precision=2)\n"),
    )
    result = mlsafety(repo, "test", "1", "--impl", str(leaky), "--functions", "inner")
    assert result.returncode == 1
    assert (
        "importing small.py changed numpy's print options (np.set_printoptions): precision 8 -> 2, "
        "and did not restore it" in (rows(result.stdout)["inner"])
    ), result.stdout
