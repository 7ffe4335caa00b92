"""Embedded chunks: the unit of work of a long build, and the only way vectors enter an index
from outside it.

A chunk file holds the passage vectors of a run of documents and says what it is: the input
range it covers, the model and passage scheme that made it, each document's content hash and
passage count, and a hash over those content hashes. A build commits one chunk file as soon as
it is embedded, so an interrupted build resumes without embedding that work again; chunk files
made elsewhere (another process, a GPU machine, workers of a distributed engine) can be dropped
into the chunk folder and are used by any build whose documents and settings they match.

    chunk-<start>-<end>-<hash of model, scheme and texts>.npz
      meta     JSON: format, model, scheme, dimension, source, start, end, count,
               texts_sha256 (of the content hashes, one a line), dtype
      hashes   the documents' content hashes (16 hex characters each)
      counts   passages per document
      vectors  (sum of counts, dimension) float32 or float16, L2-normalised rows
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import atomic_write_bytes

CHUNK_FORMAT = 1
_NAME = re.compile(r"^chunk-\d{9}-\d{9}-[0-9a-f]{12}\.npz$")


def texts_digest(hashes: Sequence[str]) -> str:
    """The hash a chunk records over its documents' content hashes."""
    return hashlib.sha256("".join(f"{h}\n" for h in hashes).encode()).hexdigest()


@dataclass(frozen=True)
class ChunkInfo:
    """What a chunk file says of itself."""

    path: Path
    model: str
    scheme: str
    dimension: int
    source: str
    start: int
    end: int
    hashes: tuple[str, ...]
    counts: tuple[int, ...]


def write_chunk(directory: Path, *, model: str, scheme: str, source: str, start: int,
                hashes: Sequence[str], counts: Sequence[int], vectors: np.ndarray,
                dtype: str = "float32") -> Path:
    """Commit the vectors of documents `start`..`start + len(hashes)` of `source` as one file."""
    if vectors.ndim != 2 or vectors.shape[0] != sum(counts) or len(counts) != len(hashes):
        raise ValueError("a chunk's vectors, counts and hashes disagree")
    end = start + len(hashes)
    digest = texts_digest(hashes)
    meta = {"format": CHUNK_FORMAT, "model": model, "scheme": scheme,
            "dimension": int(vectors.shape[1]), "source": source, "start": start, "end": end,
            "count": len(hashes), "texts_sha256": digest, "dtype": dtype}
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
             hashes=np.array(list(hashes), dtype="S16"), counts=np.asarray(counts, dtype=np.int32),
             vectors=np.ascontiguousarray(vectors, dtype=dtype))
    name = hashlib.sha256(f"{model}\n{scheme}\n{digest}".encode()).hexdigest()[:12]
    path = directory / f"chunk-{start:09d}-{end:09d}-{name}.npz"
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_chunk_info(path: Path) -> ChunkInfo | None:
    """The description of a chunk file, or None when it is not a whole, consistent chunk."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode())
            hashes = tuple(h.decode() for h in arrays["hashes"])
            counts = tuple(int(c) for c in arrays["counts"])
            shape = arrays["vectors"].shape
        if (meta.get("format") != CHUNK_FORMAT or texts_digest(hashes) != meta.get("texts_sha256")
                or len(hashes) != len(counts) or shape != (sum(counts), meta.get("dimension"))
                or min(counts, default=1) < 1):
            return None
        return ChunkInfo(path, str(meta["model"]), str(meta["scheme"]), int(meta["dimension"]),
                         str(meta.get("source", "")), int(meta["start"]), int(meta["end"]),
                         hashes, counts)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, EOFError):
        return None


def chunk_files(directory: Path) -> Iterator[Path]:
    if directory.is_dir():
        yield from sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def read_vectors(path: Path) -> np.ndarray:
    """A chunk's vectors as float32."""
    with np.load(path, allow_pickle=False) as arrays:
        return arrays["vectors"].astype(np.float32)
