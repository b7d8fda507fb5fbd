"""The downloader against a real HTTP server on 127.0.0.1 that misbehaves:
good file, truncated copy, a corrupted byte, a dropped connection (resumed
with Range), a 404 and a server too slow to answer. Nothing corrupt or partial
is ever left under the file's name."""

import hashlib
import time

import pytest

from mlsafety import SetupError
from mlsafety.download import RemoteFile, fetch_file

BODY = bytes(range(256)) * 4096  # 1 MiB, so a dropped connection leaves a real part file
SHA = hashlib.sha256(BODY).hexdigest()
FAST = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "progress": False}


def remote(*urls):
    return RemoteFile("blob.bin", tuple(urls), len(BODY), SHA)


def leftovers(folder):
    """Everything in ``folder`` except a complete, verified file."""
    return sorted(p.name for p in folder.iterdir() if p.name != "blob.bin")


def test_a_good_file_lands_verified_and_is_not_fetched_twice(server, tmp_path):
    url = server.serve("blob.bin", BODY)
    path = fetch_file(remote(url), tmp_path, "test", **FAST)
    assert path == tmp_path / "blob.bin" and path.read_bytes() == BODY
    assert leftovers(tmp_path) == []
    fetch_file(remote(url), tmp_path, "test", **FAST)
    assert len(server.requests_for("blob.bin")) == 1, "a verified file was downloaded again"


@pytest.mark.parametrize("behaviour", ["short", "corrupt"])
def test_truncated_or_corrupted_files_never_land(server, tmp_path, behaviour):
    url = server.serve("blob.bin", BODY, behaviour)
    with pytest.raises(SetupError) as err:
        fetch_file(remote(url), tmp_path, "test", **FAST)
    message = str(err.value)
    assert "blob.bin" in message and "sha256" in message and "\n" not in message
    assert not (tmp_path / "blob.bin").exists()
    assert leftovers(tmp_path) == [], "a partial or temporary file was left behind"


def test_a_dropped_connection_is_resumed_with_range(server, tmp_path):
    url = server.serve("blob.bin", BODY, "drop")
    path = fetch_file(remote(url), tmp_path, "test", **FAST)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA
    ranges = server.requests_for("blob.bin")
    assert ranges[0] is None and ranges[1] == f"bytes={len(BODY) // 2}-", ranges
    assert leftovers(tmp_path) == []


def test_a_server_that_ignores_range_still_gives_a_correct_file(server, tmp_path):
    url = server.serve("blob.bin", BODY, "drop-norange")
    path = fetch_file(remote(url), tmp_path, "test", **FAST)
    assert path.read_bytes() == BODY


def test_resume_continues_a_part_file_left_by_an_earlier_run(server, tmp_path):
    (tmp_path / "blob.bin.part").write_bytes(BODY[:1000])  # an interrupted earlier run
    url = server.serve("blob.bin", BODY)
    assert fetch_file(remote(url), tmp_path, "test", **FAST).read_bytes() == BODY
    assert server.requests_for("blob.bin") == ["bytes=1000-"]


def test_a_404_is_not_retried_and_the_next_mirror_is_tried(server, tmp_path):
    missing = server.serve("gone.bin", BODY, "missing")
    with pytest.raises(SetupError, match="HTTP 404"):
        fetch_file(remote(missing), tmp_path, "test", **FAST)
    assert len(server.requests_for("gone.bin")) == 1
    good = server.serve("blob.bin", BODY)
    assert fetch_file(remote(missing, good), tmp_path, "test", **FAST).read_bytes() == BODY


def test_a_server_too_slow_to_answer_times_out(server, tmp_path):
    url = server.serve("blob.bin", BODY, "slow", delay=30.0)
    started = time.perf_counter()
    with pytest.raises(SetupError, match="timed out") as err:
        fetch_file(remote(url), tmp_path, "test", **{**FAST, "timeout": 0.3, "retries": 1})
    # two attempts of 0.3 s each: far less than the server's 30 s, however busy the machine
    assert time.perf_counter() - started < 15
    assert "nothing was installed" in str(err.value)
    assert not (tmp_path / "blob.bin").exists()
