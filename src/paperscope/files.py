"""Where paperscope's files are, and how any of them is written: finding a library (the
folder holding catalogue.yaml), the cache folder, reading text files with clear errors, and
atomic writes (a reader sees the old file or the new one, whole). The catalogue's format is
catalogue.py's, the index's is index.py's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError

CATALOGUE_NAME = "catalogue.yaml"
INDEX_DIR_NAME = "index"
LIBRARY_ENV = "PAPERSCOPE_LIBRARY"
CACHE_ENV = "PAPERSCOPE_CACHE"



def atomic_write_bytes(path: Path, data: bytes, like: os.stat_result | None = None) -> None:
    """Write data to path so that readers see the old file or the new one, whole; with
    `like` (the replaced file's stat), its mode and, where permitted, its owner are kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, stat.S_IMODE(like.st_mode) if like else 0o666 & ~_umask())
        if like and (like.st_uid, like.st_gid) != (os.getuid(), os.getgid()):
            with contextlib.suppress(OSError):  # only root may give a file away
                os.chown(tmp, like.st_uid, like.st_gid)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class LibraryPaths:
    """Where a library's catalogue and index live."""

    root: Path

    @property
    def catalogue(self) -> Path:
        return self.root / CATALOGUE_NAME

    @property
    def index_dir(self) -> Path:
        return self.root / INDEX_DIR_NAME


def _no_catalogue_in(folder: Path) -> str:
    if folder.is_dir():
        return f"{folder} holds no {CATALOGUE_NAME}"
    return f"{folder} is not a folder" if folder.exists() else f"{folder} does not exist"


def find_library(start: Path | None = None) -> LibraryPaths:
    """The library in `start` (--library: that folder itself), else $PAPERSCOPE_LIBRARY, else
    the nearest folder at or above the current one that holds a catalogue.yaml. Only the
    current folder's search climbs: a mistyped folder never leads to its parent's catalogue."""
    if start is None and os.environ.get(LIBRARY_ENV):
        start = Path(os.environ[LIBRARY_ENV])
        if not (start / CATALOGUE_NAME).is_file():
            raise UsageError(f"{LIBRARY_ENV}={_no_catalogue_in(start)}.")
        return LibraryPaths(start.resolve())
    if start is not None:
        if not (start / CATALOGUE_NAME).is_file():
            raise UsageError(f"{_no_catalogue_in(start)}.",
                             hint=f"Pass the folder that holds the {CATALOGUE_NAME}, or create "
                                  "one with: paperscope init --from-markdown FILE")
        return LibraryPaths(start.resolve())
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / CATALOGUE_NAME).is_file():
            return LibraryPaths(folder)
    raise UsageError(
        f"No {CATALOGUE_NAME} found in {here} or any folder above it.",
        hint=f"Run paperscope inside a library, pass --library DIR, or set {LIBRARY_ENV}.",
    )


def cache_dir() -> Path:
    """paperscope's cache folder: $PAPERSCOPE_CACHE, else ~/.cache/paperscope."""
    base = os.environ.get(CACHE_ENV) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "paperscope"
    return Path(base)


def corpus_index_dir(corpus: Path) -> Path:
    """Where the index of a corpus file is cached when no --index-dir is given."""
    key = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "corpora" / f"{corpus.parent.name or 'corpus'}-{key}"


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, modification time) of a file, or None when absent: an atomic write
    (atomic_write_bytes) always changes it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def file_size(path: Path) -> int:
    """A file's size in bytes, 0 when it cannot be read (for progress bars)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_text(path: Path, what: str, newline: str | None = None) -> str:
    """The UTF-8 text of a file (`newline` as `open` takes it: "" keeps line ends as they are)."""
    try:
        with open(path, encoding="utf-8", newline=newline) as handle:
            return handle.read()
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}).") from None
