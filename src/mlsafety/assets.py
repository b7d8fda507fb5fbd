"""The assets manifest (environments/assets.toml): what each profile needs,
how datasets are fetched and unpacked, and whether what is on disk is right.

A dataset is fetched into ``<data root>/.downloads``, checked against its
sha256, unpacked into a temporary folder and renamed into place in one step,
with a stamp (``.mlsafety-asset.json``) recording the archives' hashes and the
size, modification time and sha256 of every unpacked file. So a folder under
the data root is either complete and verified or absent; nothing half-written
is ever read. Loading checks every file's size, and re-hashes a file whose
modification time changed since it was unpacked (cheap: untouched files are
not re-read). When the data root is read-only (a baked image), `make data`
installs a repaired copy into the user cache instead, and loading looks there.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from mlsafety import SetupError
from mlsafety.download import RemoteFile, fetch_file
from mlsafety.paths import data_root, repo_root, retire, user_cache, writable

STAMP = ".mlsafety-asset.json"
STANDIN_NOTE = "STANDIN.txt"  # inside every stand-in (mlsafety.standin): never the published data
LAYOUTS = ("mnist", "tar", "copy")


def manifest_path() -> Path:
    return repo_root() / "environments" / "assets.toml"


def lock_path() -> Path:
    return repo_root() / "environments" / "assets.lock.json"


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    licence: str
    homepage: str
    folder: str  # under the data root, where torchvision's class looks
    profiles: tuple[str, ...]
    weeks: tuple[int | str, ...]  # course weeks by number, other labs by id ("security1")
    layout: str | None = None  # how the files are unpacked; None for generated data
    generated: str | None = None  # how offline data is made instead of fetched
    hash_source: str | None = None
    files: tuple[RemoteFile, ...] = ()

    @property
    def fetch_command(self) -> str:
        return f"make data PROFILE={self.profiles[0]}"

    @property
    def labs(self) -> tuple[str, ...]:
        """The lab ids that read this dataset: ``week03``, ``security1``."""
        return _lab_ids(self.weeks)


@dataclass(frozen=True)
class Checkpoint:
    name: str
    title: str
    recipe: str
    licence: str
    profiles: tuple[str, ...]
    weeks: tuple[int | str, ...]  # course weeks by number, other labs by id ("security1")
    extra: dict = field(default_factory=dict)

    @property
    def labs(self) -> tuple[str, ...]:
        """The lab ids that use this checkpoint: ``week03``, ``security1``."""
        return _lab_ids(self.weeks)


def _lab_ids(weeks: tuple[int | str, ...]) -> tuple[str, ...]:
    return tuple(f"week{w:02d}" if isinstance(w, int) else w for w in weeks)


@dataclass(frozen=True)
class Manifest:
    datasets: dict[str, Dataset]
    checkpoints: dict[str, Checkpoint]

    def for_profile(self, profile: str) -> tuple[list[Dataset], list[Checkpoint]]:
        return (
            [d for d in self.datasets.values() if profile in d.profiles],
            [c for c in self.checkpoints.values() if profile in c.profiles],
        )


@cache
def manifest(path: Path | None = None) -> Manifest:
    """The parsed manifest; malformed entries are errors naming the entry."""
    path = Path(path) if path else manifest_path()
    raw = tomllib.loads(path.read_text())
    datasets = {}
    for name, entry in raw.get("datasets", {}).items():
        entry = dict(entry)
        files = tuple(
            RemoteFile(f["name"], tuple(f["urls"]), f.get("size"), f["sha256"], f.get("md5"))
            for f in entry.pop("files", [])
        )
        try:
            datasets[name] = Dataset(
                name=name,
                profiles=tuple(entry.pop("profiles")),
                weeks=tuple(entry.pop("weeks", ())),
                files=files,
                **entry,
            )
        except (TypeError, KeyError) as err:
            raise SetupError(f"{path}: dataset {name!r} is malformed ({err})") from None
        if datasets[name].layout not in (*LAYOUTS, None) or not (files or entry.get("generated")):
            raise SetupError(f"{path}: dataset {name!r} needs files and a layout in {LAYOUTS}")
    checkpoints = {}
    for name, entry in raw.get("checkpoints", {}).items():
        entry = dict(entry)
        known = {"title", "recipe", "licence"}
        checkpoints[name] = Checkpoint(
            name=name,
            profiles=tuple(entry.pop("profiles")),
            weeks=tuple(entry.pop("weeks", ())),
            extra={k: v for k, v in entry.items() if k not in known},
            **{k: entry[k] for k in known},
        )
    return Manifest(datasets, checkpoints)


def dataset(name: str) -> Dataset:
    found = manifest().datasets.get(name)
    if found is None:
        raise SetupError(f"unknown dataset {name!r}; known: {', '.join(manifest().datasets)}")
    return found


# --------------------------------------------------------------------------- #
# State on disk.
# --------------------------------------------------------------------------- #


def read_stamp(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / STAMP).read_text())
    except (OSError, ValueError):
        return None


def dataset_folder(entry: Dataset, root: Path | None = None) -> Path:
    """Where dataset ``entry`` lives: ``<root>/<folder>``; the offline data
    falls back to a user cache when the default data root is read-only, and so
    does a published dataset repaired there by `make data`."""
    if entry.generated and root is None:
        from mlsafety.data import smoke_root

        return smoke_root()
    return Path(root or _dataset_root(entry)) / entry.folder


def cache_root() -> Path:
    """Where `make data` installs datasets when the data root is read-only."""
    return user_cache() / "datasets"


def _dataset_root(entry: Dataset) -> Path:
    """The data root, or the user cache when that holds the only intact copy."""
    root = data_root()
    if writable(root) or dataset_state(entry, root) == "verified":
        return root
    if dataset_state(entry, cache_root()) == "verified":
        return cache_root()
    return root


def dataset_state(entry: Dataset, root: Path | None = None, deep: bool = False) -> str:
    """``"verified"``, ``"missing"`` or ``"corrupt: <why>"`` for a dataset.

    The quick check (what loading does) compares the stamp with the manifest
    and every unpacked file's size, and re-hashes the files modified since
    they were unpacked; ``deep`` re-hashes every file. The offline digits are
    always re-hashed (a few megabytes), and their tensor caches checked.
    """
    from mlsafety.data import SMOKE_MANIFEST, smoke_problem, tensor_cache_problems

    folder = dataset_folder(entry, root)
    if entry.generated:
        baked = data_root() / entry.folder
        if root is None and folder != baked and (baked / SMOKE_MANIFEST).exists():
            problem = smoke_problem(baked)  # why the user cache's copy is the one used
            if problem and not (folder / SMOKE_MANIFEST).exists():
                return f"corrupt: {problem} (in the read-only data root)"
        if not (folder / SMOKE_MANIFEST).exists():
            return "missing"
        problem = smoke_problem(folder)
        if problem:
            return f"corrupt: {problem}"
        for path, problem in tensor_cache_problems(folder).items():
            return f"corrupt: tensor cache {path} is damaged ({problem})"
        return "verified"
    if not folder.exists():
        return "missing"
    stamp = read_stamp(folder)
    if (stamp or {}).get("standin") or (folder / STANDIN_NOTE).exists():
        # a rehearsal's stand-in moved or copied here is never the dataset
        return (
            "corrupt: it is a stand-in (generated by `mlsafety standin`), not the published files"
        )
    if stamp is None:
        return "corrupt: no stamp (not installed by `make data`)"
    if stamp.get("archives") != {f.name: f.sha256 for f in entry.files}:
        return "corrupt: fetched from other files than the manifest names"
    return stamped_files_state(folder, stamp, deep)


def stamped_files_state(folder: Path, stamp: dict, deep: bool = False) -> str:
    """``"verified"`` or ``"corrupt: <why>"``: every file the stamp lists has its
    size, and its sha256 when modified since unpacking (``deep``: always)."""
    from mlsafety.data import is_pickle_batch, pickle_problem, sha256_file

    for rel, info in stamp["files"].items():
        path = Path(folder) / rel
        if not path.is_file() or path.stat().st_size != info["size"]:
            return f"corrupt: {rel} is missing or has the wrong size"
        touched = path.stat().st_mtime_ns != info.get("mtime_ns", path.stat().st_mtime_ns)
        if (deep or touched) and sha256_file(path) != info["sha256"]:
            return f"corrupt: {rel} does not match its sha256"
        # the stamp sits beside the files: a pickle is handed to torchvision only
        # once it is known to hold plain data
        problem = pickle_problem(path) if is_pickle_batch(rel) else None
        if problem:
            return f"corrupt: {rel} is {problem}"
    return "verified"


def require_dataset(name: str, root: Path | None = None) -> Path:
    """The folder of fetched dataset ``name``, or one line saying what to run."""
    entry = dataset(name)
    root = Path(root or _dataset_root(entry))
    state = dataset_state(entry, root)
    if state != "verified":
        raise SetupError(
            f"dataset {name!r} is {state} at {root / entry.folder}; "
            f"{'repair' if state.startswith('corrupt') else 'fetch'} it with "
            f"`{entry.fetch_command}` (nothing downloads at lab time)"
        )
    return root


# --------------------------------------------------------------------------- #
# Fetching and installing.
# --------------------------------------------------------------------------- #


def fetch_dataset(
    name: str,
    root: Path | None = None,
    progress: bool = True,
    source: Path | None = None,
    **download_options,
) -> tuple[Path, str]:
    """Make dataset ``name`` present and verified under ``root`` (default: the
    data root). Returns the folder and what happened: ``"present"``,
    ``"fetched"``, ``"copied"``, ``"written"`` (offline data) or
    ``"repaired"`` (a damaged copy replaced, or a damaged tensor cache of the
    offline data rebuilt).

    Every file of a present copy is re-hashed first, so a damaged one is
    replaced without deleting anything by hand. With the default data root
    read-only (a baked image), a replacement goes to the user cache, where
    loading finds it. With ``source``, the files are taken from that folder
    (a shared drive, a USB stick, a build context) instead of the network, and
    checked against the same sha256s."""
    entry = dataset(name)
    if entry.generated:
        from mlsafety.data import warm_tensor_caches, write_smoke_data

        target = dataset_folder(entry, root)
        state = dataset_state(entry, root)
        folder = write_smoke_data(target)
        if root is None:
            warm_tensor_caches(folder)
        what = "present" if state == "verified" else "written" if state == "missing" else "repaired"
        return folder, what
    default = root is None
    root = Path(root or data_root())
    final = root / entry.folder
    state = dataset_state(entry, root, deep=True)
    if state == "verified":
        return final, "present"
    if not writable(root):
        if default and dataset_state(entry, cache_root(), deep=True) == "verified":
            return cache_root() / entry.folder, "present"
        if not default:
            raise SetupError(
                f"dataset {name!r} is {state} and the data root {root} is read-only; "
                f"point MLSAFETY_DATA at a writable folder and run `{entry.fetch_command}`"
            )
        from mlsafety.data import note

        note(
            f"dataset {name!r} is {state} at {final} and the data root is read-only; "
            f"installing it into the user cache {cache_root()} instead"
        )
        root, final = cache_root(), cache_root() / entry.folder
    downloads = root / ".downloads" / name
    try:
        if source is not None:
            found = locate_files(entry, Path(source))
            fetched = [_copy_verified(f, found[f.name], downloads, name) for f in entry.files]
        else:
            fetched = [
                fetch_file(f, downloads, name, progress=progress, **download_options)
                for f in entry.files
            ]
        install(entry, fetched, root)
        shutil.rmtree(downloads, ignore_errors=True)
    finally:
        for folder in (downloads, downloads.parent):  # kept only while they hold a .part to resume
            with contextlib.suppress(OSError):
                folder.rmdir()
    if state.startswith("corrupt"):
        return final, "repaired"
    return final, "fetched" if source is None else "copied"


def _alias(name: str) -> str:
    """A folder name as compared with a dataset's names: ``FashionMNIST``,
    ``fashion-mnist`` and ``fashion_mnist`` are all ``fashionmnist``."""
    return "".join(c for c in name.lower() if c.isalnum())


def folder_names(entry: Dataset) -> tuple[str, ...]:
    """The subfolder names a local copy of ``entry`` may use: its name in the
    manifest, with underscores, and torchvision's folder name."""
    return tuple(dict.fromkeys((entry.name, entry.name.replace("-", "_"), entry.folder)))


def clashing(entry: Dataset) -> list[str]:
    """The other published datasets of a profile ``entry`` is in that have
    files of the same names (Fashion-MNIST's are MNIST's)."""
    names = {f.name for f in entry.files}
    return [
        other.name
        for other in manifest().datasets.values()
        if other.name != entry.name
        and set(other.profiles) & set(entry.profiles)
        and names & {f.name for f in other.files}
    ]


def source_folders(entry: Dataset, source: Path) -> tuple[list[Path], str]:
    """Where the files of ``entry`` are looked for under ``source``: its
    subfolders named after the dataset (any of :func:`folder_names`, in any
    case, and their ``raw/``, as torchvision keeps them), then ``source``
    itself when it is named after the dataset or when no dataset of the same
    profiles has files of the same names. Returns the folders and, when
    ``source`` itself is left out, why."""
    aliases = {_alias(n) for n in folder_names(entry)}
    subs = sorted(p for p in source.iterdir() if p.is_dir() and _alias(p.name) in aliases)
    folders = [f for sub in subs for f in (sub, sub / "raw")]
    others = {_alias(n) for d in manifest().datasets.values() for n in folder_names(d)} - aliases
    clash = clashing(entry)
    why = ""
    if _alias(source.name) in aliases:
        folders.append(source)
    elif _alias(source.name) in others:
        why = "it is named after another dataset"
    elif clash:
        why = f"{', '.join(clash)} has files of the same names"
    else:
        folders.append(source)
    return folders, why


def locate_files(entry: Dataset, source: Path) -> dict[str, Path]:
    """Each file of ``entry`` found under ``source`` (see
    :func:`source_folders`), or one line naming what is missing and where it
    was looked for."""
    if not source.is_dir():
        raise SetupError(f"{source} is not a folder")
    folders, why = source_folders(entry, source)
    found, missing = {}, []
    for remote in entry.files:
        paths = [f / remote.name for f in folders if (f / remote.name).is_file()]
        if paths:
            found[remote.name] = paths[0]
        else:
            missing.append(remote.name)
    if missing:
        places = [f"{f}/" for f in folders if f.is_dir()]
        names = " or ".join(f"{n}/" for n in folder_names(entry))
        where = f"looked in {', '.join(places)}" if places else f"it has no subfolder {names}"
        aside = f"; not in {source}/ itself, as {why}" if why else ""
        hint = f"; the published files go in a subfolder named {names}" if places else ""
        raise SetupError(f"{', '.join(missing)} not found under {source} ({where}{aside}){hint}")
    return found


def _copy_verified(remote: RemoteFile, found: Path, folder: Path, label: str) -> Path:
    """``found`` copied into ``folder`` if its sha256 is the manifest's."""
    from mlsafety.data import sha256_file

    if sha256_file(found) != remote.sha256:
        from mlsafety.standin import is_standin_file

        if is_standin_file(found):
            raise SetupError(
                f"{label}: {found} is a stand-in written by `mlsafety standin`, not the "
                f"published file, and was not used (only a rehearsal installs it: "
                f"`make data STANDIN=1` with the same FROM)"
            )
        raise SetupError(
            f"{label}: {found} does not match its sha256 in environments/assets.toml; "
            f"it is not the published file and was not used"
        )
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found, folder / remote.name)
    return folder / remote.name


def install(entry: Dataset, files: list[Path], root: Path, standin: str | None = None) -> Path:
    """Unpack verified ``files`` into a temporary folder beside the target,
    stamp it, and rename it into place (replacing a stale copy).

    ``standin`` (the text of its note) marks a rehearsal's stand-in: the stamp
    records the files' own hashes and says so, and the note is written inside,
    so that no check of the published dataset ever accepts the folder."""
    from mlsafety.data import sha256_file, sweep_leftovers

    root.mkdir(parents=True, exist_ok=True)
    final = root / entry.folder
    sweep_leftovers(root, f".staging-{entry.name}-")  # what a killed install left behind
    archives = {f.name: f.sha256 for f in entry.files}
    if standin is not None:
        archives = {Path(f).name: sha256_file(f) for f in files}
    with tempfile.TemporaryDirectory(dir=root, prefix=f".staging-{entry.name}-") as tmp:
        staged = Path(tmp) / entry.folder
        _unpack(entry, files, Path(tmp), staged)
        if standin is not None:
            (staged / STANDIN_NOTE).write_text(standin)
        unpacked = sorted(p for p in staged.rglob("*") if p.is_file())
        stamp = {
            "dataset": entry.name,
            **({"standin": True} if standin is not None else {}),
            "archives": archives,
            "files": {
                str(p.relative_to(staged)): {
                    "size": p.stat().st_size,
                    "mtime_ns": p.stat().st_mtime_ns,
                    "sha256": sha256_file(p),
                }
                for p in unpacked
            },
        }
        (staged / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
        if final.exists():
            retire(final)
        staged.rename(final)
    return final


def _unpack(entry: Dataset, files: list[Path], tmp: Path, staged: Path) -> None:
    import gzip
    import tarfile

    if entry.layout == "mnist":  # torchvision's MNIST classes read <folder>/raw/<name>
        raw = staged / "raw"
        raw.mkdir(parents=True)
        for path in files:
            try:
                with gzip.open(path) as src, open(raw / path.name.removesuffix(".gz"), "wb") as d:
                    shutil.copyfileobj(src, d)
            except (OSError, EOFError) as err:
                raise SetupError(
                    f"dataset {entry.name!r}: {path.name} is not valid gzip ({err})"
                ) from None
    elif entry.layout == "tar":  # the archive holds the folder torchvision reads
        for path in files:
            try:
                with tarfile.open(path) as tar:
                    tar.extractall(tmp, filter="data")  # no absolute paths, links out, devices
            except (tarfile.TarError, OSError) as err:
                raise SetupError(
                    f"dataset {entry.name!r}: {path.name} is unsafe or broken ({err})"
                ) from None
        if not staged.is_dir():
            raise SetupError(f"dataset {entry.name!r}: the archive holds no {entry.folder}/ folder")
    elif entry.layout == "copy":
        staged.mkdir(parents=True)
        for path in files:
            shutil.copyfile(path, staged / path.name)
    else:
        raise SetupError(f"dataset {entry.name!r}: unknown layout {entry.layout!r}")


# --------------------------------------------------------------------------- #
# The checkpoint lock file: what each recipe built, per profile.
# --------------------------------------------------------------------------- #


def read_lock(path: Path | None = None) -> dict:
    path = Path(path or lock_path())
    return json.loads(path.read_text()) if path.exists() else {"checkpoints": {}}


def lock_entry(name: str, profile: str) -> dict | None:
    return read_lock()["checkpoints"].get(name, {}).get(profile)


def write_lock_entries(entries: dict[tuple[str, str], dict], path: Path | None = None) -> Path:
    """Record ``{(checkpoint, profile): entry}`` in the lock file, keeping the rest."""
    path = Path(path or lock_path())
    lock = read_lock(path)
    lock["comment"] = (
        "sha256 of each checkpoint as its recipe built it (`make assets LOCK=1`); "
        "`key` identifies the recipe's settings and data"
    )
    for (name, profile), entry in entries.items():
        lock["checkpoints"].setdefault(name, {})[profile] = entry
    lock["checkpoints"] = {
        k: dict(sorted(v.items())) for k, v in sorted(lock["checkpoints"].items())
    }
    path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    return path
