"""Traceability: every lab's claims file (tests/claims/<lab id>.toml) maps each
claim of its graded functions' docstrings to specs that establish it, and every
`raise` of the solution is provoked by a spec of its function with an input
that triggers only it. The rules live in mlsafety.claims; `make verify-<lab>`
applies them too."""

import ast
import textwrap

import pytest

from mlsafety.claims import Raise, documented_raises, without_raise
from mlsafety.weeks import all_labs

from .conftest import BIN, run
from .fake_lab import SPECS, make_repo, mlsafety


@pytest.mark.parametrize("lab", list(all_labs()))
def test_every_claim_is_established_by_a_spec(lab):
    result = run([str(BIN / "mlsafety"), "claims", lab], timeout=900)
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    assert result.returncode == 0, "\n".join(problems) or result.stdout[-3000:] + result.stderr
    assert "raise-deletion variants run in" in result.stdout


def test_the_raises_section_is_read_entry_by_entry():
    doc = """Do it.

    Args:
        x: a value. Raises nothing: by itself.

    Raises:
        ValueError: a negative x, or one that
            TypeError: is only mentioned in a continuation line.
        numpy.linalg.LinAlgError: a singular matrix.

    Returns:
        something.
    """
    assert documented_raises(textwrap.dedent(doc)) == ["ValueError", "LinAlgError"]
    assert documented_raises("No section.") == []


def test_a_raise_becomes_pass_and_every_other_line_keeps_its_number():
    source = textwrap.dedent(
        """
        def f(x):
            if x < 0:
                raise ValueError(
                    "negative"
                )
            if x > 9: raise KeyError(x)  # same line
            return x
        """
    )
    raises = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Raise)]
    first, second = (
        Raise("", n.lineno, n.end_lineno, n.col_offset, n.end_col_offset, "f") for n in raises
    )
    once = without_raise(source, first)
    assert once.splitlines()[3] == "        pass" and "negative" not in once
    assert once.splitlines()[6] == source.splitlines()[6], "later lines keep their numbers"
    namespace = {}
    exec(compile(once, "f", "exec"), namespace)
    assert namespace["f"](-1) == -1
    twice = without_raise(source, second)
    assert "if x > 9: pass  # same line" in twice
    exec(compile(twice, "f", "exec"), namespace)
    assert namespace["f"](10) == 10


def test_each_rule_names_its_problem(tmp_path):
    specs = SPECS.replace(
        """@graded("scale")
def test_scale_rejects_a_negative_factor(small):
    with pytest.raises(ValueError):
        small.scale([1.0], -1.0)
""",
        "",
    )
    repo = make_repo(tmp_path, specs=specs)
    (repo / "tests" / "claims").mkdir(parents=True)
    (repo / "tests" / "claims" / "week01.toml").write_text(
        textwrap.dedent(
            """
            [scale]
            "raises ValueError for a negative factor" = ["test_scale_rejects_a_negative_factor"]
            "multiplies by factor" = ["test_scale_closed_form"]

            [lookup]
            "finds the value" = ["test_scale_closed_form"]

            [inner]
            "counts to n" = []

            [ghost]
            "haunts" = ["test_inner_counts"]
            """
        )
    )
    result = mlsafety(repo, "claims", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    problems = [
        line.removeprefix("PROBLEM: ")
        for line in result.stdout.splitlines()
        if line.startswith("PROBLEM: ")
    ]
    line = (repo / "solutions" / "week01_small" / "small.py").read_text().splitlines()
    scale_raise = next(i for i, text in enumerate(line, 1) if "factor must be" in text)
    expected = [
        "week01: [ghost] in week01.toml is not a graded function (graded: scale, lookup, inner, "
        "outer)",
        "week01: scale: claim 'raises ValueError for a negative factor' names "
        "test_scale_rejects_a_negative_factor, which is not a spec in labs/week01_small/test_*.py",
        "week01: lookup: claim 'finds the value' names test_scale_closed_form, which is graded "
        "for scale, not lookup",
        "week01: lookup: its docstring's Raises names ValueError, but no claim starts with "
        "'raises ValueError'",
        "week01: inner: claim 'counts to n' must name a list of specs",
        "week01: week01.toml has no table [outer]",
        f"raise at solutions/week01_small/small.py:{scale_raise} (ValueError) is never provoked "
        "by a spec of scale that triggers only it",
    ]
    for problem in expected:
        assert problem in problems, f"{problem}\nnot in\n" + "\n".join(problems)
    assert len(problems) == len(expected), "\n".join(problems)
    assert "provoked raise at solutions/week01_small/small.py" in result.stdout  # lookup's


def test_a_lab_without_a_claims_file_fails(tmp_path):
    repo = make_repo(tmp_path)
    result = mlsafety(repo, "claims", "1", "--static")
    assert result.returncode == 1
    assert "week01: tests/claims/week01.toml does not exist" in result.stdout
