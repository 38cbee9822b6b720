"""Datasets by name: the shipped copy, then the download cache; ``freecg data fetch`` fills the cache.

Every public set freecg-plugin knows is listed once, in ``registry.yaml`` beside this file: a name
such as ``rmd17/aspirin`` or ``water/deepmd64``, its format and energy unit, licence and source, and
its files (path under the data root, public URL, size, SHA-256). A name resolves, in this order, to

1. the copy shipped in a source checkout (``examples/data/``, present for ``pip install -e .``), then
2. the cache: ``$FREECG_DATA`` if set, else the per-user cache folder (``platformdirs``).

Downloads happen only when asked (:func:`fetch`, ``freecg data fetch``), through ``pooch``: a file
is written under a temporary name and renamed only after its SHA-256 matched, so the cache never
holds a partial or wrong file. ``$FREECG_DATA_MIRROR`` (a base URL) replaces every file's URL by
``MIRROR/<path>``, for an institutional mirror or an offline copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..files import write_text

__all__ = [
    "DataFile",
    "Dataset",
    "cache_root",
    "data_roots",
    "dataset",
    "datasets",
    "describe",
    "fetch",
    "locate",
    "sha256_of",
    "shipped_root",
]

_REGISTRY = Path(__file__).with_name("registry.yaml")


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: ``path`` under a data root, public ``url`` (``None``: shipped with
    the source repository only), ``bytes`` and ``sha256`` (``None``: pinned on first download)."""

    path: str
    url: Optional[str]
    bytes: Optional[int]
    sha256: Optional[str]


@dataclass(frozen=True)
class Dataset:
    """A named public set.

    Attributes:
        name: e.g. ``rmd17/aspirin``.
        format: ``rmd17`` (train/test files per split, or the official archive), ``npz``,
            ``extxyz``, ``qm9-npz``, ``qm9-xyz`` or ``mdsim-npy``.
        energy_unit: unit of the energies in its files.
        energy_key: energy key of its extxyz files.
        unpack: the download is an archive to unpack beside it.
        prepare: the command that makes the dataset locally (from an installed package), for
            sets that are converted rather than downloaded.
    """

    name: str
    description: str
    format: str
    energy_unit: str
    licence: str
    source: str
    files: Tuple[DataFile, ...]
    energy_key: str = "energy"
    unpack: bool = False
    prepare: Optional[str] = None

    def select(self, split: Optional[str] = None) -> Tuple[DataFile, ...]:
        """The files of rMD17 split ``split`` (``"01"`` to ``"05"``), or all files."""
        if split is None or self.format != "rmd17" or self.unpack:
            return self.files
        chosen = tuple(f for f in self.files if f.path.endswith(f"_{split}.npz"))
        if not chosen:
            raise ValueError(f"{self.name} has no split {split!r}")
        return chosen


@lru_cache(maxsize=1)
def _load() -> Dict[str, Dataset]:
    import yaml

    entries = yaml.safe_load(_REGISTRY.read_text())["datasets"]
    return {name: Dataset(name=name, **{**entry, "files": tuple(DataFile(**f) for f in entry["files"])}) for name, entry in entries.items()}


def datasets() -> List[Dataset]:
    """Every dataset the registry knows, in registry order."""
    return list(_load().values())


def dataset(name: str) -> Dataset:
    """The dataset called ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    known = _load()
    if name not in known:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(known)} (freecg data list)")
    return known[name]


def shipped_root() -> Optional[Path]:
    """``examples/data`` of the source checkout this package runs from, if there is one."""
    root = Path(__file__).resolve().parents[2] / "examples" / "data"
    return root if root.is_dir() else None


def cache_root() -> Path:
    """Where downloads go: ``$FREECG_DATA``, else the per-user cache folder."""
    if os.environ.get("FREECG_DATA"):
        return Path(os.environ["FREECG_DATA"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("freecg-plugin")) / "data"


def data_roots() -> List[Path]:
    """The folders searched for a dataset's files, in order."""
    shipped = shipped_root()
    return ([shipped] if shipped is not None else []) + [cache_root()]


def _present(root: Path, file: DataFile) -> bool:
    return (root / file.path).is_file()


def locate(name: str, split: Optional[str] = None) -> Path:
    """The data root holding every file of ``name`` (split ``split`` for rMD17).

    For rMD17 molecules the official archive (``freecg data fetch rmd17/archive``) also counts:
    the returned root then holds ``rmd17/.../npz_data/rmd17_<molecule>.npz`` and its ``splits``.

    Raises:
        FileNotFoundError: naming every place looked in and the command that fetches the data.
    """
    entry = dataset(name)
    files = entry.select(split)
    roots = data_roots()
    for root in roots:
        if all(_present(root, f) for f in files):
            return root
    looked = [str(root / f.path) for root in roots for f in files[:1]]
    if entry.format == "rmd17" and not entry.unpack:
        molecule = name.split("/", 1)[1]
        for root in roots:
            if any((root / "rmd17").glob(f"**/npz_data/rmd17_{molecule}.npz")):
                return root
            looked.append(str(root / "rmd17" / "**" / "npz_data" / f"rmd17_{molecule}.npz"))
    what = name if split is None else f"{name} split {split}"
    if entry.prepare:
        hint = f"run: {entry.prepare}"
    elif any(f.url for f in files):
        hint = "run: freecg data fetch " + name + (f" --split {split}" if split and entry.format == "rmd17" else "")
    else:
        hint = "it travels with the source repository only (examples/data in a git checkout)"
    raise FileNotFoundError(f"dataset {what} not found; looked in: {', '.join(looked)}; {hint}")


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _url(file: DataFile) -> Optional[str]:
    mirror = os.environ.get("FREECG_DATA_MIRROR")
    if mirror:
        return mirror.rstrip("/") + "/" + file.path
    return file.url


def fetch(
    name: str, split: Optional[str] = None, root: Optional[Path] = None, progress: bool = False, require_hash: bool = False
) -> List[Path]:
    """Download the files of ``name`` (split ``split`` for rMD17) into ``root`` (default: the
    cache), checking each SHA-256; files already there and matching are kept. Returns their paths.

    A file without a published hash is trusted on its first download (a warning on stderr says
    so, with the SHA-256 it pins in ``<file>.sha256``); later fetches must match it.
    ``require_hash`` refuses such files instead, before downloading anything.

    Raises:
        ValueError: unknown name, a checksum mismatch (nothing is left in the cache), a file
            that is not published for download, or (``require_hash``) one without a published
            hash that was never pinned.
        OSError: the download failed (nothing partial is left in the cache).
    """
    entry = dataset(name)
    root = Path(root) if root is not None else cache_root()
    if require_hash:
        unpinned = [f.path for f in entry.select(split) if f.sha256 is None and not (root / (f.path + ".sha256")).is_file()]
        if unpinned:
            raise ValueError(
                f"{name}: {unpinned[0]} has no published SHA-256 (refused: --require-hash); without it, the first download is trusted"
            )
    paths = []
    for file in entry.select(split):
        url = _url(file)
        if url is None and entry.prepare:
            raise ValueError(f"{name} is not downloaded but made here: run {entry.prepare}")
        if url is None:
            raise ValueError(f"{name}: {file.path} is not published for download; it travels with the source repository (examples/data)")
        target = root / file.path
        pin = target.with_name(target.name + ".sha256")
        known = file.sha256 or (pin.read_text().strip() if pin.is_file() else None)
        if target.is_file() and known is not None and sha256_of(target) != known:
            target.unlink()  # a stale or damaged copy: fetch it again
        if not target.is_file():
            _download(name, url, known, target, progress)
        if entry.unpack:
            _unpack(target)
        if known is None:
            digest = sha256_of(target)
            write_text(pin, digest + "\n")
            print(
                f"WARNING: {file.path} has no published SHA-256: this first download from {url} is trusted as it is and "
                f"pinned ({digest}); later fetches must match it. --require-hash refuses such files.",
                file=sys.stderr,
                flush=True,
            )
        paths.append(target)
    return paths


def _download(name: str, url: str, known: Optional[str], target: Path, progress: bool) -> None:
    """``url`` into ``target``, checked against ``known``, through a staging folder of this
    process that only a finished, checked download leaves (renamed onto ``target``)."""
    import pooch

    staging = _staging_folder(target.parent)
    try:
        pooch.retrieve(url, known_hash=None if known is None else f"sha256:{known}", fname=target.name, path=staging, progressbar=progress)
        os.replace(staging / target.name, target)
    except ValueError as err:  # pooch: hash mismatch
        raise ValueError(f"{name}: {url}: {err}".replace("\n", " ")) from None
    except Exception as err:
        raise OSError(f"{name}: download of {url} failed ({type(err).__name__}: {err})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _staging_folder(folder: Path) -> Path:
    """``folder/.download-<host>-<pid>`` for this process, made new; the staging folders of this
    host's processes that no longer run (a killed download) are removed first."""
    host = socket.gethostname()
    for old in folder.glob(f".download-{host}-*"):
        pid = old.name.rsplit("-", 1)[1]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    staging = folder / f".download-{host}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _unpack(archive: Path) -> None:
    """Unpack ``archive`` beside it unless a finished unpacking is recorded (``<archive>.unpacked``):
    an unpacking that was interrupted runs again."""
    import pooch

    done = archive.with_name(archive.name + ".unpacked")
    if not done.is_file():
        pooch.Untar(extract_dir=".")(str(archive), "download", None)
        write_text(done, "")


def describe(name: str) -> str:
    """Where ``name`` is now, for ``freecg data list``: a root (with the rMD17 splits found
    there), or how to get it."""
    entry = dataset(name)
    if entry.format == "rmd17" and not entry.unpack:
        found: Dict[Path, List[str]] = {}
        for split in sorted({f.path.rsplit("_", 1)[1][:2] for f in entry.files}):
            try:
                found.setdefault(locate(name, split), []).append(split)
            except FileNotFoundError:
                pass
        if found:
            return "; ".join(f"{root} (split {', '.join(splits)})" for root, splits in found.items())
    else:
        try:
            return str(locate(name))
        except FileNotFoundError:
            pass
    if entry.prepare:
        return f"not here: {entry.prepare}"
    return f"not here: freecg data fetch {name}" if any(f.url for f in entry.files) else "source checkout only"
