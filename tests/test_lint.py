from .conftest import BIN, run


def test_ruff_check():
    result = run([str(BIN / "ruff"), "check", "."])
    assert result.returncode == 0, result.stdout


def test_ruff_format():
    result = run([str(BIN / "ruff"), "format", "--check", "."])
    assert result.returncode == 0, result.stdout


def test_pre_commit_config_is_valid():
    result = run([str(BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr
