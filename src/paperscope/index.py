"""The index format: the one module that lays out, writes, checks and opens index folders.

An index folder holds
  manifest.json           the commit point: format, model, passage scheme, search method,
                          counts, and every data file with its size, SHA-256 and quick check
  records.json            arXiv metadata fetched for a catalogue (a cache, committed with it)
  vectors-<h>.npy         passage vectors, float32 (float16 in a compact index, formats 4 and 5),
                          one row per passage, documents in order
  bounds-<h>.npy          document i's passages are rows bounds[i] to bounds[i + 1] - 1
  facets-<h>.npy          per document: year (0 unknown), section code, kind code (-1 none)
  documents-<h>.sqlite    documents (id, title, text, display metadata, content hash), the
                          exact-name table and the BM25 vocabulary, read for the hits only
                          (in a compact index, texts compressed with zlib and zdict-<h>.npy,
                          titles too, names stored as 32-bit hashes, 64 KiB pages)
  bm25data-<h>.npy, bm25docs-<h>.npy, bm25ptr-<h>.npy   the BM25 matrix (see lexical.py)
  ann-<h>.faiss           for large indexes: a FAISS IVF index with 4-bit scalar quantisation
                          (8-bit in format 3 indexes built before)
  chunks/                 embedded chunks of a build in progress (see chunks.py)
  .lock                   held while a build writes (not committed)

Data files are named by their content hash and written before the manifest that names them,
so a crash at any moment leaves the previous manifest and its files intact: readers see the old
index or the new one, never a mix. Opening an index memory-maps its arrays and reads nothing
whole: each file is checked by its size and a hash of its first and last 64 KiB against the
manifest; `IndexStore.verify` hashes every byte.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import stat
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from .errors import (
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    LockedError,
    storage_error,
)
from .files import atomic_write_json
from .records import Document, PaperRecord
from .sources.ids import record_key
from .text import document_names

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # NumPy loads when an index is opened or written, so `status` stays quick
    import numpy as np

# Format 3: float32 vectors and BM25 weights, plain texts. Format 4 (approximate indexes since
# issue 19): float16 vectors and BM25 weights, texts compressed with a dictionary (`zdict`),
# 4-bit IVF codes. Format 5 (approximate indexes now): format 4 with titles compressed too, the
# exact-name table keyed by 32-bit hashes of the names, and 64 KiB pages in the document table;
# format 4 indexes still open. Exact indexes, the catalogue's included, are still format 3.
FORMAT_VERSION = 3
TEXT_NAMES_FORMAT_VERSION = 4
COMPACT_FORMAT_VERSION = 5
READABLE_FORMATS = (FORMAT_VERSION, TEXT_NAMES_FORMAT_VERSION, COMPACT_FORMAT_VERSION)
ARRAY_TYPES = ("float32", "float16")  # of the vectors and the BM25 weights
MANIFEST_NAME = "manifest.json"
RECORDS_NAME = "records.json"
LOCK_NAME = ".lock"
CHUNKS_DIR = "chunks"
CHECK_BYTES = 1 << 16
REBUILD_HINT = "Rebuild it with: paperscope build --full"
RECORDS_HINT = "Restore it with `git checkout index/records.json`, or delete it and run: paperscope ingest"
REQUIRED_FILES = ("vectors", "bounds", "facets", "documents", "bm25data", "bm25docs", "bm25ptr")
# The order of the manifest's `files`, whatever order a build staged them in (a rebuilt
# catalogue index gives the same manifest.json).
FILES_ORDER = ("vectors", "bounds", "facets", "bm25data", "bm25docs", "bm25ptr", "documents", "zdict", "ann")
_DATA_FILE = re.compile(r"^([a-z0-9]+)-[0-9a-f]{16}\.(npy|sqlite|faiss)$")
_OLD_DATA_FILE = re.compile(r"^[a-z0-9]+-[0-9a-f]{16}\.(npy|sqlite|faiss|json|npz)$")  # format 2 too
# Far above what a build writes (the records of 100,000 papers are about 200 MB); a larger file
# is refused before it is read.
MAX_MANIFEST_BYTES = 64 << 20
MAX_RECORDS_BYTES = 2 << 30
# Large indexes compress the texts of their document table with a dictionary of this size at
# most (zlib's window); one text inflates to at most MAX_DOCUMENT_BYTES.
ZDICT_BYTES = 32768
MAX_DOCUMENT_BYTES = 16 << 20
_DOCUMENT_TABLES = {"documents", "names", "terms", "tags"}
_LIST_META = {"authors", "tags", "categories"}


def quick_check(path: Path, size: int) -> str:
    """A cheap fingerprint of a file: its size and the hash of its first and last 64 KiB."""
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(CHECK_BYTES))
        if size > CHECK_BYTES:
            handle.seek(max(CHECK_BYTES, size - CHECK_BYTES))
            digest.update(handle.read(CHECK_BYTES))
    return digest.hexdigest()[:32]


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class DataFile:
    """One data file a manifest names: its name, SHA-256, size and quick check."""

    file: str
    sha256: str
    bytes: int
    check: str


@dataclass(frozen=True)
class Manifest:
    """What manifest.json says of an index, every field checked for its type when read.
    The only way any module learns about an index's settings (`OpenIndex.manifest`)."""

    model: str
    dimension: int
    count: int
    passages: int
    scheme: str  # the passage scheme's name (text.SCHEMES)
    scheme_words: tuple[int, ...]
    documents_digest: str
    search: str = "exact"  # or "ivf-sq4" (formats 4 and 5), "ivf-sq8" (format 3)
    ann_lists: int | None = None  # the IVF index's lists, for an approximate index
    search_requested: str = "auto"
    sections: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    lexical: dict[str, Any] = field(default_factory=dict)  # BM25 parameters, for the record
    stopwords: tuple[str, ...] = ()
    tokenizer: int = 1  # lexical.TOKENIZER_VERSION of the BM25 vocabulary (absent: 1, before spelling.py)
    model_fingerprint: str | None = None
    encoder: str | None = None  # the registered encoder kind that made the vectors
    versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, DataFile] = field(default_factory=dict)
    vectors_dtype: str = "float32"  # float16 in a compact (format 4 or 5) index
    weights_dtype: str = "float32"  # of the BM25 weights; float16 in a compact index
    hashed_names: bool = False  # the exact-name table holds hashes of the names (format 5)

    @property
    def compact(self) -> bool:
        """Whether this is a compact index (format 4 or 5): float16 arrays, compressed texts."""
        return self.vectors_dtype != "float32" or self.weights_dtype != "float32" or "zdict" in self.files

    @property
    def format(self) -> int:
        if self.hashed_names:
            return COMPACT_FORMAT_VERSION
        return TEXT_NAMES_FORMAT_VERSION if self.compact else FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """The manifest as written: the same keys, in the same order, for the same index."""
        search: dict[str, Any] = {"kind": self.search}
        if self.ann_lists is not None:
            search["lists"] = self.ann_lists
        data: dict[str, Any] = {
            "format": self.format, "model": self.model, "model_fingerprint": self.model_fingerprint,
            **({"encoder": self.encoder} if self.encoder else {}),
            "dimension": self.dimension, "count": self.count, "passages": self.passages,
            "passages_scheme": {"name": self.scheme, "words": list(self.scheme_words)},
            "search": search, "search_requested": self.search_requested,
            "documents_digest": self.documents_digest,
            "facets": {"sections": list(self.sections), "kinds": list(self.kinds), "tags": list(self.tags)},
            "lexical": {**self.lexical, "tokenizer": self.tokenizer, "stopwords": list(self.stopwords),
                        **({"weights_dtype": self.weights_dtype} if self.weights_dtype != "float32" else {})},
            **({"vectors_dtype": self.vectors_dtype} if self.vectors_dtype != "float32" else {}),
            "versions": dict(self.versions),
        }
        if self.files:
            order = sorted(self.files, key=lambda name: (FILES_ORDER.index(name) if name in FILES_ORDER
                                                          else len(FILES_ORDER)))
            data["files"] = {name: dataclasses.asdict(self.files[name]) for name in order}
        return data

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Manifest:
        """A manifest read from `path`: IndexMismatchError for another format, IndexCorruptError
        for anything missing or of the wrong type."""
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            raise IndexCorruptError(f"The index manifest {path} is damaged (not an index manifest).",
                                    REBUILD_HINT)
        if data.get("format") not in READABLE_FORMATS:
            raise IndexMismatchError(
                f"The index in {path.parent} has format {data.get('format')!r}; this "
                f"paperscope reads formats {', '.join(map(str, READABLE_FORMATS))}.", REBUILD_HINT)
        try:
            scheme, search, facets, lexical = (_object(data.get(key)) for key in
                                               ("passages_scheme", "search", "facets", "lexical"))
            return cls(
                model=_text(data["model"]), dimension=_natural(data.get("dimension")),
                count=_natural(data.get("count")), passages=_natural(data.get("passages")),
                scheme=_text(scheme.get("name", "")),
                scheme_words=tuple(_natural(n) for n in _list(scheme.get("words"))),
                documents_digest=_text(data.get("documents_digest") or ""),
                search=_text(search.get("kind", "exact")),
                ann_lists=_natural(search["lists"]) if "lists" in search else None,
                search_requested=_text(data.get("search_requested", "auto")),
                sections=_texts(facets.get("sections")), kinds=_texts(facets.get("kinds")),
                tags=_texts(facets.get("tags")),
                lexical={k: v for k, v in lexical.items() if k not in ("stopwords", "tokenizer", "weights_dtype")},
                stopwords=_texts(lexical.get("stopwords")),
                tokenizer=_natural(lexical.get("tokenizer", 1)),
                model_fingerprint=_optional_text(data.get("model_fingerprint")),
                encoder=_optional_text(data.get("encoder")),
                versions={_text(k): _text(v) for k, v in _object(data.get("versions")).items()},
                files={_text(name): _data_file(info) for name, info in data["files"].items()},
                vectors_dtype=_array_type(data.get("vectors_dtype", "float32")),
                weights_dtype=_array_type(lexical.get("weights_dtype", "float32")),
                hashed_names=data["format"] == COMPACT_FORMAT_VERSION,
            )
        except (KeyError, TypeError, ValueError):
            raise IndexCorruptError(f"The index manifest {path} is damaged (counts or model "
                                    "missing, or a value of the wrong type).", REBUILD_HINT) from None


def _array_type(value: Any) -> str:
    if value not in ARRAY_TYPES:
        raise ValueError("an unknown array type")
    return value


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not text")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(_text(item) for item in _list(value))


def _data_file(info: Any) -> DataFile:
    """One entry of the manifest's `files`; what each field holds is checked when the file is
    opened (`IndexStore.data_path`), so that a bad entry names the file."""
    info = _object(info)
    return DataFile(file=info.get("file"), sha256=info.get("sha256"),
                    bytes=info.get("bytes"), check=info.get("check"))


class IndexStore:
    """One index folder: its manifest, record cache, lock, writer and reader."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_NAME

    @property
    def records_path(self) -> Path:
        return self.directory / RECORDS_NAME

    @property
    def chunks_dir(self) -> Path:
        return self.directory / CHUNKS_DIR

    # -- manifest -----------------------------------------------------------------

    def read_manifest(self) -> Manifest | None:
        """The manifest, or None when no index was ever built here."""
        raw = _read_plain_file(self.manifest_path, MAX_MANIFEST_BYTES, "index manifest", REBUILD_HINT)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise IndexCorruptError(
                f"The index manifest {self.manifest_path} is damaged ({err}).", REBUILD_HINT
            ) from None
        return Manifest.from_json(data, self.manifest_path)

    def require_manifest(self) -> Manifest:
        manifest = self.read_manifest()
        if manifest is None:
            raise IndexMissingError(f"No index in {self.directory}.", "Build it with: paperscope build")
        return manifest

    def built_at(self) -> str | None:
        """When the current index was committed (its manifest's time; the manifest itself holds
        no clock time, so that the same documents always give the same bytes)."""
        try:
            stamp = self.manifest_path.stat().st_mtime
        except OSError:
            return None
        return datetime.fromtimestamp(stamp, timezone.utc).replace(microsecond=0).isoformat()

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob("*") if p.is_file())

    # -- reading ------------------------------------------------------------------

    def open(self) -> OpenIndex:
        """The index, checked cheaply and memory-mapped; a file removed by a concurrent
        build is retried once against the new manifest."""
        try:
            return OpenIndex(self, self.require_manifest())
        except IndexMissingError:
            if self.read_manifest() is None:
                raise
            return OpenIndex(self, self.require_manifest())

    def verify(self) -> None:
        """Hash every data file against the manifest (raises what `open` would, and
        IndexCorruptError for any byte that differs)."""
        index = self.open()
        for name, info in index.manifest.files.items():
            path = self.data_path(index.manifest, name)
            if _hash_file(path) != info.sha256:
                raise IndexCorruptError(f"The index file {path} is damaged: its content does not "
                                        "match the manifest.", REBUILD_HINT)
        index.close()

    def data_path(self, manifest: Manifest, name: str) -> Path:
        """The checked path of one data file the manifest names: a plain file inside this
        folder whose size and quick check match."""
        info = manifest.files.get(name)
        if info is None or not isinstance(info.file, str) or not _DATA_FILE.match(info.file) \
                or type(info.bytes) is not int:
            raise IndexCorruptError(
                f"The index manifest {self.manifest_path} names no valid {name} file.", REBUILD_HINT)
        path = self.directory / info.file
        try:
            mode = os.lstat(path)
        except FileNotFoundError:
            raise IndexMissingError(f"The index file {path} is missing.", REBUILD_HINT) from None
        except PermissionError as err:
            raise storage_error(err) from None
        except OSError as err:
            raise IndexCorruptError(f"Cannot read the index file {path}: {err.strerror}.",
                                    REBUILD_HINT) from None
        if not stat.S_ISREG(mode.st_mode):
            raise IndexCorruptError(f"The index file {path} is not a plain file.", REBUILD_HINT)
        try:
            matches = mode.st_size == info.bytes and quick_check(path, mode.st_size) == info.check
        except PermissionError as err:
            raise storage_error(err) from None
        except OSError as err:
            raise IndexCorruptError(f"Cannot read the index file {path}: {err.strerror}.",
                                    REBUILD_HINT) from None
        if not matches:
            raise IndexCorruptError(
                f"The index file {path} is damaged: its content does not match the manifest.",
                REBUILD_HINT)
        return path

    def indexed_hashes(self, manifest: Manifest) -> dict[str, str]:
        """Document id -> content hash in the index `manifest` describes (reads no arrays)."""
        return self._document_column(manifest, "hash")

    def indexed_meta(self, manifest: Manifest) -> dict[str, str]:
        """Document id -> its display metadata as `meta_json` wrote it (reads no arrays)."""
        return self._document_column(manifest, "meta")

    def _document_column(self, manifest: Manifest, column: str) -> dict[str, str]:
        path = self.data_path(manifest, "documents")
        zdict = _read_zdict(self, manifest)
        with contextlib.closing(open_document_table(path)) as db:
            try:
                return {key: _inflate(value, zdict)
                        for key, value in db.execute(f"SELECT id, {column} FROM documents")}
            except (sqlite3.DatabaseError, zlib.error, UnicodeDecodeError):
                raise _unreadable_table(path) from None

    # -- writing ------------------------------------------------------------------

    def writer(self) -> IndexWriter:
        return IndexWriter(self)

    # -- records cache ------------------------------------------------------------

    def read_records(self) -> dict[str, PaperRecord]:
        """Fetched paper metadata by record key ({} when nothing was fetched yet): the bare id
        for arXiv records, as the file has always held them, `scheme:id` for other sources'
        (sources/ids.py); a key written `arxiv:ID` is read as `ID`."""
        raw = _read_plain_file(self.records_path, MAX_RECORDS_BYTES, "record cache", RECORDS_HINT)
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("records"), dict):
                raise ValueError("no `records` object")
        except (ValueError, RecursionError) as err:
            raise self._records_damaged(err) from None
        records = {}
        for key, value in data["records"].items():
            try:
                record = PaperRecord.from_json(value)  # its id as a record key
                same = record.arxiv_id == record_key(key)  # `arxiv:2106.09685` is `2106.09685`
            except ValueError as err:
                raise self._records_damaged(f"the record {key!r}: {err}") from None
            if not same:
                raise self._records_damaged(f"the record {key!r} holds arXiv {record.arxiv_id}")
            records[record.arxiv_id] = record
        return records

    def _records_damaged(self, why: object) -> IndexCorruptError:
        return IndexCorruptError(f"The record cache {self.records_path} is damaged ({why}).", RECORDS_HINT)

    def write_records(self, records: dict[str, PaperRecord]) -> None:
        """Write the record cache whole, under record keys (arXiv records under bare ids, so
        the file stays as it has always been)."""
        keyed = {record_key(key): record for key, record in records.items()}
        ordered = {key: keyed[key].to_json() for key in sorted(keyed)}
        atomic_write_json(self.records_path, {"format": 1, "records": ordered})

    # -- lock ---------------------------------------------------------------------

    @contextlib.contextmanager
    def write_lock(self, wait: bool = True,
                   on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the index's lock file; one writer at a time."""
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
            for leftover in self.directory.glob(".*.tmp"):  # of a writer that was killed
                with contextlib.suppress(OSError):
                    if leftover.is_dir() and not leftover.is_symlink():
                        shutil.rmtree(leftover)
                    else:
                        leftover.unlink()
            yield
        finally:
            lock.release()


class IndexWriter:
    """Stages the data files of a new index in its folder, then commits them with a manifest.
    Until `commit`, nothing a reader opens has changed; `discard` removes what was staged."""

    def __init__(self, store: IndexStore):
        self.store = store
        self.files: dict[str, DataFile] = {}
        self._open: dict[str, tuple[Path, str]] = {}
        store.directory.mkdir(parents=True, exist_ok=True)

    def _temp(self, name: str) -> Path:
        path = self.store.directory / f".{name}.{secrets.token_hex(6)}.tmp"
        self._open[name] = (path, "")
        return path

    def array(self, name: str, values: np.ndarray) -> None:
        import numpy as np

        path = self._temp(name)
        with open(path, "wb") as handle:
            np.save(handle, np.ascontiguousarray(values), allow_pickle=False)
        self._finish(name, path, "npy")

    @contextlib.contextmanager
    def stream_array(self, name: str, shape: tuple[int, ...], dtype: Any) -> Iterator[Callable[[np.ndarray], None]]:
        """An array file written front to back: the caller appends blocks of rows (exactly
        `shape` in all), through the file, so that a large array never sits in memory (nor in
        the mapped pages a memory-mapped write would keep resident)."""
        import numpy as np

        path = self._temp(name)
        dtype = np.dtype(dtype)
        written = [0]
        with open(path, "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                          "fortran_order": False, "shape": shape})

            def append(block: np.ndarray) -> None:
                block = np.ascontiguousarray(block, dtype=dtype)
                handle.write(block.tobytes())
                written[0] += block.size

            yield append
        if written[0] != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{name}: {written[0]} values written, {shape} announced")
        self._finish(name, path, "npy")

    def temp_folder(self, name: str) -> Path:
        """A scratch folder inside the index folder (removed by `discard`, `commit` and the
        next writer's lock), for a build's intermediate files."""
        path = self._temp(name)
        path.mkdir()
        return path

    @contextlib.contextmanager
    def sqlite(self, name: str, vacuum: bool = True) -> Iterator[sqlite3.Connection]:
        """A new SQLite file to fill in one transaction (`vacuum`: then compacted, which a
        file of gigabytes, written once in order, does not need)."""
        path = self._temp(name)
        connection = sqlite3.connect(path)
        try:
            connection.execute("PRAGMA journal_mode=OFF")
            connection.execute("PRAGMA synchronous=OFF")
            with connection:
                yield connection
            if vacuum:
                connection.execute("VACUUM")
        finally:
            connection.close()
        self._finish(name, path, "sqlite")

    def faiss(self, name: str, index: Any) -> None:
        import faiss

        path = self._temp(name)
        faiss.write_index(index, str(path))
        self._finish(name, path, "faiss")

    def _finish(self, name: str, temp: Path, extension: str) -> None:
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        digest, size = _hash_file(temp), temp.stat().st_size
        final = self.store.directory / f"{name}-{digest[:16]}.{extension}"
        os.replace(temp, final)
        del self._open[name]
        self.files[name] = DataFile(final.name, digest, size, quick_check(final, size))

    def staged_path(self, name: str) -> Path:
        """Where a finished data file of this build lies (to read it back, e.g. the vectors)."""
        return self.store.directory / self.files[name].file

    def commit(self, manifest: Manifest) -> None:
        """Write the manifest naming the staged files, then remove files and leftovers
        (temporary files of killed writers, consumed chunks) that no manifest needs."""
        atomic_write_json(self.store.manifest_path,
                          dataclasses.replace(manifest, files=dict(self.files)).to_json())
        keep = {info.file for info in self.files.values()}
        for path in self.store.directory.iterdir():
            stale = (_OLD_DATA_FILE.match(path.name) and path.name not in keep) or \
                (path.name.startswith(".") and path.name.endswith(".tmp"))
            if stale:
                with contextlib.suppress(OSError):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()

    def discard(self) -> None:
        for path, _ in self._open.values():
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        self._open.clear()


def documents_digest(documents: Sequence[Document] | Iterator[Document]) -> str:
    """One hash over what a list of documents shows and embeds, in order."""
    digest = hashlib.sha256()
    for document in documents:
        digest.update(json.dumps(document.to_json(), ensure_ascii=False, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()


class OpenIndex:
    """An index opened for reading: arrays memory-mapped, documents read on demand."""

    def __init__(self, store: IndexStore, manifest: Manifest):
        import numpy as np

        self.store = store
        self.manifest = manifest
        directory = store.directory
        self.count, self.dimension, passages = manifest.count, manifest.dimension, manifest.passages
        self.model_name = manifest.model
        from .lexical import TOKENIZER_VERSIONS

        # The tokenizer that built the BM25 vocabulary (indexes built before spelling.py: 1).
        if manifest.tokenizer not in TOKENIZER_VERSIONS:
            raise IndexMismatchError(f"The index in {directory} was built with tokenizer version "
                                     f"{manifest.tokenizer!r}; this paperscope knows "
                                     f"{', '.join(map(str, TOKENIZER_VERSIONS))}.", REBUILD_HINT)
        paths = {name: store.data_path(manifest, name) for name in REQUIRED_FILES}
        self.vectors = self._array(paths["vectors"], (passages, self.dimension),
                                   np.dtype(manifest.vectors_dtype))
        self.bounds = self._array(paths["bounds"], (self.count + 1,), np.int64)
        self.facets = self._array(paths["facets"], (self.count, 3), np.int32)
        if self.count and (self.bounds[0] != 0 or self.bounds[-1] != passages
                           or bool((np.diff(self.bounds) < 0).any())):
            raise self._disagree("the document bounds do not cover the vectors in order")
        bm25ptr = self._array(paths["bm25ptr"], None, np.int64)
        bm25docs = self._array(paths["bm25docs"], None, np.int32)
        bm25data = self._array(paths["bm25data"], (len(bm25docs),),
                               np.dtype(manifest.weights_dtype))
        self._zdict = _read_zdict(store, manifest)
        if len(bm25ptr) < 1 or bm25ptr[-1] != len(bm25data):
            raise self._disagree("the BM25 arrays are inconsistent")
        self._db_path = paths["documents"]
        self._db = open_document_table(self._db_path)
        last = self._query("SELECT max(position) FROM documents", ())[0][0]
        if (last if last is not None else -1) != self.count - 1:
            raise self._disagree(f"the document table holds {0 if last is None else last + 1} "
                                 f"documents, the manifest {self.count}")
        from .lexical import LexicalIndex

        # a term's column, remembered: every search asks for its words' several times
        column = functools.lru_cache(maxsize=1 << 16)(self._term_column)
        self.lexical = LexicalIndex(column, bm25data, bm25docs, bm25ptr, self.count,
                                    manifest.stopwords, manifest.tokenizer)
        log.info("opened %s: %d documents, %d passages, model %s, %s search", directory, self.count,
                 passages, self.model_name, manifest.search)
        self._ann: Any = None  # a faiss index

    def _array(self, path: Path, shape: tuple[int, ...] | None, dtype: Any) -> np.ndarray:
        import numpy as np

        try:
            values = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise IndexCorruptError(f"The index file {path} cannot be read.", REBUILD_HINT) from None
        if values.dtype != dtype or (shape is not None and values.shape != shape) or \
                (shape is None and values.ndim != 1):
            if shape and values.ndim == 2 and path.name.startswith("vectors") and \
                    values.shape[1] != shape[1]:
                raise IndexMismatchError(
                    f"The vectors in {self.store.directory} have dimension {values.shape[1]}, "
                    f"the manifest says {shape[1]}.", REBUILD_HINT)
            raise self._disagree(f"{path.name} has shape {values.shape} and type {values.dtype}")
        return values

    def _disagree(self, what: str) -> IndexCorruptError:
        return IndexCorruptError(f"The index files in {self.store.directory} disagree with its "
                                 f"manifest ({what}).", REBUILD_HINT)

    def close(self) -> None:
        self._db.close()

    @property
    def ann(self) -> Any:
        """The approximate (FAISS IVF) index over the passage vectors, memory-mapped; None
        for an exact index."""
        if self._ann is None and self.manifest.search != "exact":
            import faiss

            path = self.store.data_path(self.manifest, "ann")
            try:
                self._ann = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
            except RuntimeError:
                raise IndexCorruptError(f"The index file {path} cannot be read.", REBUILD_HINT) from None
            if self._ann.ntotal != len(self.vectors) or self._ann.d != self.dimension:
                raise self._disagree("the approximate index does not hold the vectors")
        return self._ann

    # -- documents ----------------------------------------------------------------

    def documents(self, positions: Sequence[int]) -> list[Document]:
        """The documents at these positions, in that order."""
        wanted = [int(p) for p in positions]
        found: dict[int, Document] = {}
        for start in range(0, len(wanted), 500):
            batch = wanted[start:start + 500]
            rows = self._query(f"SELECT position, id, title, text, meta FROM documents WHERE position IN "
                               f"({','.join('?' * len(batch))})", batch)
            for position, *row in rows:
                found[position] = self._document(row)
        if len(found) != len(set(wanted)):
            raise self._disagree("a document is missing from the document table")
        return [found[p] for p in wanted]

    def document(self, position: int) -> Document:
        return self.documents([position])[0]

    def all_documents(self) -> Iterator[Document]:
        for row in self._query("SELECT id, title, text, meta FROM documents ORDER BY position", ()):
            yield self._document(row)

    def _document(self, row: Sequence[Any]) -> Document:
        """A document from its table row, every field of the type readers expect."""
        doc_id, title, text, raw_meta = row
        try:
            title, text, raw_meta = (_inflate(value, self._zdict) for value in (title, text, raw_meta))
            meta = json.loads(raw_meta)
            if not (isinstance(doc_id, str) and isinstance(title, str) and isinstance(text, str)
                    and isinstance(meta, dict)):
                raise ValueError("not text")
            for key, value in meta.items():
                if not (type(value) is int or value is None if key == "year" else
                        isinstance(value, list) and all(isinstance(v, str) for v in value)
                        if key in _LIST_META else value is None or isinstance(value, str)):
                    raise ValueError(key)
        except (TypeError, ValueError, RecursionError, zlib.error):
            raise self._disagree(f"the document {doc_id!r} has metadata of the wrong type") from None
        return Document(doc_id, title, text, meta)

    def ids(self) -> list[str]:
        return [row[0] for row in self._query("SELECT id FROM documents ORDER BY position", ())]

    def position(self, doc_id: str) -> int | None:
        row = self._query("SELECT position FROM documents WHERE id = ?", (doc_id,))
        return row[0][0] if row else None

    def named(self, key: str) -> list[int]:
        """Positions of the documents called `key` (see text.document_names). In a format 5
        index the table holds hashes of the names (`name_hash`): each document found is
        confirmed by its own names, so that a hash shared by two names never finds the wrong one."""
        if not self.manifest.hashed_names:
            return [row[0] for row in self._query(
                "SELECT position FROM names WHERE key = ? ORDER BY position", (key,))]
        found = sorted(row[0] for row in self._query("SELECT position FROM names WHERE key = ?",
                                                     (name_hash(key),)))
        return [position for position, document in zip(found, self.documents(found), strict=True)
                if key in document_names(document)]

    def newest_year(self) -> int | None:
        """The latest year of any document (None when no document has one)."""
        import numpy as np

        years = np.asarray(self.facets[:, 0])
        return int(years.max()) if len(years) and years.max() > 0 else None

    def dated_since(self, day: str) -> list[int]:
        """Positions of the documents whose `date` (YYYY-MM-DD, or a YYYY-MM or YYYY prefix of
        one) is on or after `day` (YYYY[-MM[-DD]]), compared on the coarser of the two
        precisions: a paper dated 2025-02 is kept from --since 2025-02-10. Only the documents
        of that year or later by their year facet (or of no known year) are read."""
        import numpy as np

        years = np.asarray(self.facets[:, 0])
        maybe = np.flatnonzero((years >= int(day[:4])) | (years == 0)).tolist()
        kept = []
        for start in range(0, len(maybe), 500):
            batch = maybe[start:start + 500]
            for position, raw_meta in self._query(
                    f"SELECT position, meta FROM documents WHERE position IN ({','.join('?' * len(batch))})",
                    batch):
                try:
                    date = json.loads(_inflate(raw_meta, self._zdict)).get("date")
                except (TypeError, ValueError, AttributeError, RecursionError, zlib.error):
                    raise self._disagree(f"the document at {position} has unreadable metadata") from None
                precision = min(len(date), len(day)) if isinstance(date, str) else 0
                if precision and date[:precision] >= day[:precision]:
                    kept.append(position)
        return sorted(kept)

    def tagged(self, tags: Sequence[str]) -> list[int]:
        """Positions of the documents carrying any of `tags` (compared without case)."""
        wanted = sorted({tag.casefold() for tag in tags} & set(self.manifest.tags))
        if not wanted:
            return []
        return [row[0] for row in self._query(
            f"SELECT DISTINCT position FROM tags WHERE tag IN ({','.join('?' * len(wanted))})", wanted)]

    def content_rows(self) -> dict[str, tuple[int, int]]:
        """Content hash -> (first passage row, passage count), for reusing vectors."""
        import numpy as np

        bounds = np.asarray(self.bounds)
        return {h: (int(bounds[p]), int(bounds[p + 1] - bounds[p]))
                for p, h in self._query("SELECT position, hash FROM documents", ())}

    def _term_column(self, term: str) -> int | None:
        row = self._query("SELECT col FROM terms WHERE term = ?", (term,))
        return row[0][0] if row else None

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple]:
        try:
            return self._db.execute(sql, tuple(args)).fetchall()
        except sqlite3.DatabaseError:
            raise _unreadable_table(self._db_path) from None

    # -- vectors ------------------------------------------------------------------

    def passage_vectors(self, position: int) -> np.ndarray:
        import numpy as np

        return np.asarray(self.vectors[self.bounds[position]:self.bounds[position + 1]], dtype=np.float32)

    def document_vector(self, position: int) -> np.ndarray:
        """One vector for a document: the normalised mean of its passages' vectors."""
        import numpy as np

        mean = self.passage_vectors(position).mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def _read_zdict(store: IndexStore, manifest: Manifest) -> bytes | None:
    """The dictionary the document table's texts are compressed with (large indexes), or
    None when they are stored as plain text."""
    if "zdict" not in manifest.files:
        return None
    import numpy as np

    path = store.data_path(manifest, "zdict")
    if manifest.files["zdict"].bytes > ZDICT_BYTES + 1024:  # read only a file of a dictionary's size
        raise IndexCorruptError(f"The index file {path} is not a compression dictionary.", REBUILD_HINT)
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise IndexCorruptError(f"The index file {path} cannot be read.", REBUILD_HINT) from None
    if values.dtype != np.uint8 or values.ndim != 1 or len(values) > ZDICT_BYTES:
        raise IndexCorruptError(f"The index file {path} is not a compression dictionary.", REBUILD_HINT)
    return values.tobytes()


def _inflate(value: Any, zdict: bytes | None) -> Any:
    """A text column as written: plain text, or (large indexes) UTF-8 compressed with zlib and
    the index's dictionary. zlib.error or UnicodeDecodeError when damaged."""
    if not isinstance(value, bytes) or zdict is None:
        return value
    inflater = zlib.decompressobj(zdict=zdict)
    raw = inflater.decompress(value, MAX_DOCUMENT_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        raise zlib.error("a truncated or oversized compressed text")
    return raw.decode("utf-8")


def deflater(zdict: bytes) -> Callable[[str], bytes]:
    """A function compressing texts as the document table of a large index stores them (see
    `_inflate`). Priming zlib with the dictionary costs more than compressing an abstract, so
    each text starts from a copy of one primed compressor."""
    primed = zlib.compressobj(6, zdict=zdict)

    def deflate(text: str) -> bytes:
        compressor = primed.copy()
        return compressor.compress(text.encode("utf-8")) + compressor.flush()

    return deflate


def _read_plain_file(path: Path, cap: int, what: str, hint: str | None) -> bytes | None:
    """The bytes of a small index file; None when it is absent. Only a plain file (not a link,
    a device or a pipe, which could block or never end) of at most `cap` bytes is read."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            raise IndexCorruptError(f"The {what} {path} is not a plain file.", hint)
        if info.st_size > cap:
            raise IndexCorruptError(f"The {what} {path} is {info.st_size:,} bytes, more than any "
                                    "build writes.", hint)
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(descriptor, "rb") as handle:
            data = handle.read(cap + 1)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise storage_error(err) from None
    if len(data) > cap:
        raise IndexCorruptError(f"The {what} {path} grew past {cap:,} bytes while read.", hint)
    return data


def open_document_table(path: Path) -> sqlite3.Connection:
    """The document table, read-only, once its schema holds only what a build writes: the four
    tables and their indexes, no view or trigger (which could run a query without end)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        db.execute("PRAGMA trusted_schema=OFF")
        schema = db.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError:
        raise _unreadable_table(path) from None
    tables = [(name, sql or "") for kind, name, sql in schema if kind == "table"]
    if any(kind not in ("table", "index") for kind, _, _ in schema) or \
            {name for name, _ in tables} != _DOCUMENT_TABLES or \
            not all(sql.upper().startswith("CREATE TABLE") for _, sql in tables):
        db.close()
        raise IndexCorruptError(f"The document table {path} holds more than a build writes "
                                "(a view, a trigger or another table).", REBUILD_HINT)
    return db


def _unreadable_table(path: Path) -> IndexCorruptError:
    return IndexCorruptError(f"The document table {path} cannot be read.", REBUILD_HINT)


def _natural(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(value)
    return value


def meta_json(meta: dict[str, Any]) -> str:
    """A document's display metadata as the document table stores it."""
    return json.dumps(meta, ensure_ascii=False, sort_keys=True)


def name_hash(key: str) -> int:
    """A name as the exact-name table of a compact (format 5) index keys it: the first 4 bytes
    of its BLAKE2b digest, a signed 32-bit integer (4 bytes in SQLite). Names that share a hash
    are told apart by `OpenIndex.named`; at 3,000,000 documents one lookup in about 600 meets
    another name's hash."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest(), "big", signed=True)


def write_document_table(connection: sqlite3.Connection, documents: Iterator[tuple[Document, str]],
                         terms: Sequence[str] | Callable[[], Sequence[str]],
                         tags: Callable[[Document], set[str]] = lambda document: set(),
                         zdict: bytes | None = None) -> None:
    """Fill a new document table: documents with their content hashes, names
    (text.document_names), tags, BM25 terms (or a function giving them once every document is
    written, for a build that reads the documents once). With `zdict` (large indexes: format 5)
    each title, text and metadata is stored compressed (`deflate`), each name as its `name_hash`
    in a table sorted by it, in pages of 64 KiB (a page of 4 KiB leaves a tenth of itself unused
    after its last abstract)."""
    names_key = "TEXT NOT NULL, position INTEGER NOT NULL" if zdict is None else \
        "INTEGER NOT NULL, position INTEGER NOT NULL, PRIMARY KEY (key, position)) WITHOUT ROWID; --"
    connection.executescript(f"""
        {"" if zdict is None else "PRAGMA page_size = 65536;"}
        CREATE TABLE documents (position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                                title TEXT NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL,
                                hash TEXT NOT NULL);
        CREATE TABLE names (key {names_key});
        CREATE TABLE terms (term TEXT PRIMARY KEY, col INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE tags (tag TEXT NOT NULL, position INTEGER NOT NULL);
    """)
    deflate = deflater(zdict) if zdict is not None else None
    names_table = "names"
    if zdict is not None:  # names are gathered unsorted in a temporary table (see the end)
        connection.execute("CREATE TEMP TABLE pending_names (key INTEGER NOT NULL, position INTEGER NOT NULL)")
        names_table = "temp.pending_names"
    batch: list[tuple] = []
    name_rows: list[tuple] = []
    tag_rows: list[tuple] = []
    for position, (document, content_hash) in enumerate(documents):
        text, meta = document.text, meta_json(document.meta)
        batch.append((position, document.id, *(value if deflate is None else deflate(value)
                                               for value in (document.title, text, meta)), content_hash))
        keys: set[Any] = document_names(document)
        if deflate is not None:
            keys = {name_hash(key) for key in keys}
        name_rows.extend((key, position) for key in sorted(keys))
        tag_rows.extend((tag, position) for tag in sorted(tags(document)))
        if len(batch) >= 5000:
            connection.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)", batch)
            connection.executemany(f"INSERT INTO {names_table} VALUES (?, ?)", name_rows)
            connection.executemany("INSERT INTO tags VALUES (?, ?)", tag_rows)
            batch, name_rows, tag_rows = [], [], []
    connection.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?)", batch)
    connection.executemany(f"INSERT INTO {names_table} VALUES (?, ?)", name_rows)
    connection.executemany("INSERT INTO tags VALUES (?, ?)", tag_rows)
    if callable(terms):
        terms = terms()
    connection.executemany("INSERT INTO terms VALUES (?, ?)", ((t, i) for i, t in enumerate(terms)))
    if zdict is None:
        connection.execute("CREATE INDEX names_by_key ON names (key)")
    else:  # the names, sorted, into a table that is its own index (half the bytes)
        connection.execute("INSERT INTO names SELECT key, position FROM temp.pending_names "
                           "ORDER BY key, position")
        connection.execute("DROP TABLE temp.pending_names")
    connection.execute("CREATE INDEX tags_by_tag ON tags (tag)")
