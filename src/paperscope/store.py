"""All file I/O of paperscope: finding a library, reading and atomically
writing the catalogue, the record cache and the index files.

An index directory holds
  manifest.json        the commit point: model, dimension, documents, file hashes
  records.json         metadata fetched from arXiv (a cache, committed with the index)
  vectors-<hash>.faiss the FAISS vectors, one row per document
  documents-<hash>.json what each row is: id, title, text, display metadata
  lexical-<hash>.npz   the BM25 index
  .lock                held while a build writes (not committed)

Data files are named by their content hash and written before the manifest
that names them, so a crash at any moment leaves the previous manifest and
its files intact: readers see the old index or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import IndexCorruptError, IndexMissingError, LockedError, UsageError
from .records import PaperRecord

CATALOGUE_NAME = "catalogue.yaml"
INDEX_DIR_NAME = "index"
MANIFEST_NAME = "manifest.json"
RECORDS_NAME = "records.json"
LOCK_NAME = ".lock"
LIBRARY_ENV = "PAPERSCOPE_LIBRARY"
CACHE_ENV = "PAPERSCOPE_CACHE"
_DATA_FILE = re.compile(r"^[a-z]+-[0-9a-f]{16}\.[a-z]+$")

REBUILD_HINT = "Rebuild it with: paperscope build --full"


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


def find_library(start: Path | None = None) -> LibraryPaths:
    """The library in `start` (--library: that folder itself), else $PAPERSCOPE_LIBRARY, else
    the nearest folder at or above the current one that holds a catalogue.yaml. Only the
    current folder's search climbs: a mistyped folder never leads to its parent's catalogue."""
    if start is None and os.environ.get(LIBRARY_ENV):
        start = Path(os.environ[LIBRARY_ENV])
        if not (start / CATALOGUE_NAME).is_file():
            raise UsageError(f"{LIBRARY_ENV}={start} holds no {CATALOGUE_NAME}.")
        return LibraryPaths(start.resolve())
    if start is not None:
        if not (start / CATALOGUE_NAME).is_file():
            raise UsageError(f"{start} holds no {CATALOGUE_NAME}.",
                             hint="Pass the folder that holds it, or create one with: "
                                  "paperscope init --from-markdown FILE")
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


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}).") from None


class IndexStore:
    """Reads and writes one index directory."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_NAME

    @property
    def records_path(self) -> Path:
        return self.directory / RECORDS_NAME

    # -- manifest -----------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or None when no index was ever built here."""
        try:
            raw = self.manifest_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            manifest = json.loads(raw)
            if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
                raise ValueError("not an index manifest")
        except (ValueError, UnicodeDecodeError) as err:
            raise IndexCorruptError(
                f"The index manifest {self.manifest_path} is damaged ({err}).", REBUILD_HINT
            ) from None
        return manifest

    def require_manifest(self) -> dict[str, Any]:
        manifest = self.read_manifest()
        if manifest is None:
            raise IndexMissingError(
                f"No index in {self.directory}.", "Build it with: paperscope build"
            )
        return manifest

    # -- data files ---------------------------------------------------------------

    def read_file(self, manifest: dict[str, Any], name: str) -> bytes:
        """The bytes of one data file named by the manifest, checked against its hash."""
        info = manifest["files"].get(name)
        if not isinstance(info, dict) or "file" not in info:
            raise IndexCorruptError(
                f"The index manifest {self.manifest_path} names no {name} file.", REBUILD_HINT
            )
        path = self.directory / str(info["file"])
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise IndexMissingError(
                f"The index file {path} is missing.", REBUILD_HINT
            ) from None
        if sha256_bytes(data) != info.get("sha256"):
            raise IndexCorruptError(
                f"The index file {path} is damaged: its content does not match the manifest.",
                REBUILD_HINT,
            )
        return data

    def commit(self, blobs: dict[str, tuple[str, bytes]], manifest: dict[str, Any]) -> None:
        """Write data files (name -> (extension, bytes)), then the manifest naming them,
        then remove data files no manifest names any more."""
        self.directory.mkdir(parents=True, exist_ok=True)
        files = {}
        for name, (extension, data) in blobs.items():
            digest = sha256_bytes(data)
            filename = f"{name}-{digest[:16]}.{extension}"
            path = self.directory / filename
            if not (path.exists() and sha256_bytes(path.read_bytes()) == digest):
                atomic_write_bytes(path, data)
            files[name] = {"file": filename, "sha256": digest, "bytes": len(data)}
        atomic_write_json(self.manifest_path, {**manifest, "files": files})
        self._remove_unreferenced({info["file"] for info in files.values()})

    def _remove_unreferenced(self, keep: set[str]) -> None:
        for path in self.directory.iterdir():
            if _DATA_FILE.match(path.name) and path.name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob("*") if p.is_file())

    # -- records cache ------------------------------------------------------------

    def read_records(self) -> dict[str, PaperRecord]:
        """Fetched arXiv metadata by arXiv id ({} when nothing was fetched yet)."""
        try:
            raw = self.records_path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(raw)
            return {key: PaperRecord.from_json(value) for key, value in data["records"].items()}
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
            raise IndexCorruptError(
                f"The record cache {self.records_path} is damaged ({type(err).__name__}: {err}).",
                "Restore it with `git checkout index/records.json`, or delete it and run: "
                "paperscope ingest",
            ) from None

    def write_records(self, records: dict[str, PaperRecord]) -> None:
        ordered = {key: records[key].to_json() for key in sorted(records)}
        atomic_write_json(self.records_path, {"format": 1, "records": ordered})

    # -- lock ---------------------------------------------------------------------

    @contextlib.contextmanager
    def write_lock(self, wait: bool = True,
                   on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the index's lock file; one writer at a time."""
        from filelock import FileLock, Timeout

        self.directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.directory / LOCK_NAME))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                raise LockedError(
                    f"Another paperscope process is writing {self.directory}.",
                    "Wait for it to finish, or run again without --no-wait to queue behind it.",
                ) from None
            if on_wait:
                on_wait()
            lock.acquire()
        try:
            yield
        finally:
            lock.release()
