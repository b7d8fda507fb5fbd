"""For every week: the specs pass on the solution, fail for every graded
function on the committed stubs, and catch every buggy variant."""

import pytest

from mlsafety.weeks import all_labs

from .conftest import BIN, run


@pytest.mark.parametrize("week", list(all_labs()))
def test_specs_prove_themselves(week):
    result = run([str(BIN / "mlsafety"), "verify", str(week), "--no-claims"], timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "MISSED" not in result.stdout
