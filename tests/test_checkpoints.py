import pytest
import torch

from mlsafety import SetupError
from mlsafety.checkpoints import load_checkpoint, read_record, save_checkpoint
from mlsafety.data import sha256_file
from mlsafety.models import SmallCNN, small_cnn_for


def test_round_trip_keeps_weights_and_records_the_hash(tmp_path):
    model = small_cnn_for(torch.zeros(1, 3, 32, 32), width=8, seed=1)
    path = tmp_path / "m.pt"
    digest = save_checkpoint(model, path, {"note": "test"})
    assert digest == sha256_file(path) == read_record(path)["sha256"]
    assert read_record(path)["note"] == "test"
    loaded = load_checkpoint(path)
    assert isinstance(loaded, SmallCNN) and not loaded.training
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(loaded(x), model(x))


def test_a_tampered_checkpoint_is_refused_before_unpickling(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(SmallCNN(width=4), path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load ran on a bad file"))
    with pytest.raises(SetupError, match="corrupted") as err:
        load_checkpoint(path)
    assert "make assets" in str(err.value)


def test_wrong_expected_hash_and_missing_files_are_errors(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(SmallCNN(width=4), path)
    with pytest.raises(SetupError, match="corrupted"):
        load_checkpoint(path, sha256="0" * 64)
    with pytest.raises(SetupError, match="not found") as err:
        load_checkpoint(tmp_path / "absent.pt")
    assert "make assets" in str(err.value)


class Payload:
    """What a malicious checkpoint carries: unpickling it would create a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    payload = {"class": "SmallCNN", "config": {}, "state_dict": {}, "x": Payload(marker)}
    torch.save(payload, path)
    # the attacker controls the record too: the hash matches, weights_only still refuses
    (tmp_path / "evil.pt.json").write_text(f'{{"sha256": "{sha256_file(path)}"}}')
    with pytest.raises(SetupError, match="refused unopened") as err:
        load_checkpoint(path)
    assert not marker.exists(), "unpickling ran the payload"
    assert "\n" not in str(err.value)
