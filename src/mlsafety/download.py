"""Downloads that survive bad networks and never leave a bad file in place.

pooch does the bookkeeping: it streams into a temporary file next to the target,
checks the sha256, and only then moves the file to its name, so a corrupt or
partial download is never mistaken for a complete one. pooch does not resume, so
its downloader is :class:`ResumableDownloader`: it keeps a ``<name>.part`` file,
asks for the rest with an HTTP ``Range`` header after a dropped connection,
retries with exponential backoff, and gives up after a timeout.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from mlsafety import SetupError

TIMEOUT = float(os.environ.get("MLSAFETY_TIMEOUT", 30))  # seconds without a byte
RETRIES = 3  # attempts after the first that made no progress
BACKOFF = 0.5  # seconds before the first retry, doubled each time
MAX_ATTEMPTS = 100  # also bounds a server that drops the connection after every few bytes
CHUNK = 1 << 16


class _Fatal(Exception):
    """A failure retrying cannot fix (404, 403, ...)."""


class _Incomplete(Exception):
    """The connection closed before the announced length arrived."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    urls: tuple[str, ...]
    size: int | None
    sha256: str
    md5: str | None = None


class ResumableDownloader:
    """A pooch downloader (``downloader(url, output_file, pooch)``) that resumes.

    Bytes go to ``part``; after each dropped connection or timeout it asks for
    the remainder with ``Range: bytes=<have>-``. When the file is complete it is
    moved onto pooch's temporary ``output_file``, which pooch hash-checks.
    """

    def __init__(
        self,
        part: Path,
        size: int | None,
        label: str,
        timeout: float = TIMEOUT,
        retries: int = RETRIES,
        backoff: float = BACKOFF,
        progress: bool = True,
    ):
        self.part, self.size, self.label = Path(part), size, label
        self.timeout, self.retries, self.backoff, self.progress = (
            timeout,
            retries,
            backoff,
            progress,
        )
        self.requests: list[dict] = []  # the Range headers sent, for the curious and the tests

    def __call__(self, url: str, output_file, pooch=None, check_only: bool = False):
        import requests

        if check_only:
            return True
        failures, last = 0, None
        for _ in range(MAX_ATTEMPTS):
            before = self._have()
            try:
                self._attempt(url)
                os.replace(self.part, output_file)
                return None
            except _Fatal:
                raise
            except (requests.RequestException, OSError, _Incomplete) as err:
                last = err
            failures = 0 if self._have() > before else failures + 1
            if failures > self.retries:
                break
            time.sleep(self.backoff * 2 ** max(failures - 1, 0))
        raise _Fatal(_reason(last))

    def _have(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def _attempt(self, url: str) -> None:
        import requests
        from tqdm.auto import tqdm

        have = self._have()
        if self.size is not None and have >= self.size:
            if have == self.size:
                return  # complete: the hash check decides
            have = 0  # longer than the file can be: start again
        headers = {"Range": f"bytes={have}-"} if have else {}
        self.requests.append(headers)
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
            if r.status_code == 416 and have:
                return  # nothing left to send: the hash check decides
            if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                raise _Fatal(f"HTTP {r.status_code} {r.reason}")
            r.raise_for_status()
            if have and not _continues(r, have):
                have = 0  # the server sent the whole file instead of the rest
            length = r.headers.get("Content-Length")
            total = have + int(length) if length is not None else self.size
            mode = "ab" if have else "wb"
            with (
                open(self.part, mode) as f,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=self.label,
                    disable=not self.progress,
                    mininterval=0.5,
                    leave=False,
                ) as bar,
            ):
                for chunk in r.iter_content(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
        if total is not None and self._have() < total:
            raise _Incomplete(f"connection closed after {self._have()} of {total} bytes")


def _continues(response, have: int) -> bool:
    """Whether ``response`` carries the bytes from offset ``have`` on."""
    if response.status_code != 206:
        return False
    return response.headers.get("Content-Range", "").startswith(f"bytes {have}-")


def _reason(err: Exception | None) -> str:
    import requests

    if isinstance(err, requests.Timeout):
        return "timed out (no data for too long)"
    if isinstance(err, requests.ConnectionError):
        return "could not connect or the connection dropped"
    return str(err) or type(err).__name__


def fetch_file(
    remote: RemoteFile,
    folder: Path,
    label: str,
    timeout: float = TIMEOUT,
    retries: int = RETRIES,
    backoff: float = BACKOFF,
    progress: bool = True,
) -> Path:
    """``folder/remote.name``, downloaded from the first mirror that serves the
    right bytes. A file already there with the right sha256 is kept. On failure
    nothing is left under that name and one line says why, mirror by mirror."""
    import pooch

    pooch.get_logger().setLevel("WARNING")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{remote.name}.part"
    problems = []
    for url in remote.urls:
        downloader = ResumableDownloader(
            part, remote.size, f"{label}: {remote.name}", timeout, retries, backoff, progress
        )
        try:
            path = pooch.retrieve(
                url,
                known_hash=f"sha256:{remote.sha256}",
                fname=remote.name,
                path=folder,
                downloader=downloader,
                progressbar=False,
            )
            return Path(path)
        except ValueError:  # pooch's hash mismatch; it has deleted the file already
            part.unlink(missing_ok=True)
            problems.append(f"{url}: the file does not match its sha256 and was discarded")
        except _Fatal as err:
            problems.append(f"{url}: {err}")
    raise SetupError(
        f"could not fetch {label} file {remote.name}: {'; '.join(problems)}; nothing was "
        f"installed. Run the same command again to resume"
    )
