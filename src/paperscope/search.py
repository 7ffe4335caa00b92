"""Loading an index and ranking its documents: dense (FAISS inner product over
normalised vectors), lexical (BM25) and hybrid (a convex fusion of both)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .embedding import Encoder
from .errors import IndexCorruptError, IndexMismatchError, IndexMissingError, UsageError
from .lexical import LexicalIndex
from .records import Document, Hit
from .store import REBUILD_HINT, IndexStore

FORMAT_VERSION = 1
MODES = ("hybrid", "dense", "lexical")
MAX_QUERY_CHARS = 2000
# Fusion: each ranker's top POOL scores are min-max normalised, then mixed.
POOL = 100
DENSE_WEIGHT = 0.5


@dataclass
class LoadedIndex:
    """An index in memory: documents, their vectors and their BM25 index."""

    manifest: dict
    documents: list[Document]
    vectors: object  # faiss.Index
    lexical: LexicalIndex

    @property
    def model_name(self) -> str:
        return self.manifest["model"]

    def position(self, doc_id: str) -> int | None:
        if not hasattr(self, "_positions"):
            self._positions = {doc.id: i for i, doc in enumerate(self.documents)}
        return self._positions.get(doc_id)

    def vector(self, position: int) -> np.ndarray:
        return self.vectors.reconstruct(position).reshape(1, -1)


def load_index(store: IndexStore) -> LoadedIndex:
    """Read and check the index in `store`; a file removed by a concurrent
    build is retried once against the new manifest."""
    try:
        return _load(store)
    except IndexMissingError:
        if store.read_manifest() is None:
            raise
        return _load(store)


def _load(store: IndexStore) -> LoadedIndex:
    import faiss

    manifest = store.require_manifest()
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexMismatchError(
            f"The index in {store.directory} has format {manifest.get('format')!r}; this "
            f"paperscope reads format {FORMAT_VERSION}.", REBUILD_HINT)
    vector_bytes = store.read_file(manifest, "vectors")
    try:
        vectors = faiss.deserialize_index(np.frombuffer(vector_bytes, dtype=np.uint8))
    except RuntimeError:
        raise IndexCorruptError(f"The vector index in {store.directory} cannot be read.",
                                REBUILD_HINT) from None
    try:
        raw_docs = json.loads(store.read_file(manifest, "documents"))
        documents = [Document.from_json(d) for d in raw_docs]
    except (ValueError, KeyError, TypeError):
        raise IndexCorruptError(f"The document table in {store.directory} cannot be read.",
                                REBUILD_HINT) from None
    try:
        lexical = LexicalIndex.from_bytes(store.read_file(manifest, "lexical"))
    except (ValueError, OSError, KeyError):
        raise IndexCorruptError(f"The lexical index in {store.directory} cannot be read.",
                                REBUILD_HINT) from None
    expected = [entry["id"] for entry in manifest.get("documents", [])]
    if (vectors.ntotal != len(documents) or lexical.num_docs != len(documents)
            or [d.id for d in documents] != expected):
        raise IndexCorruptError(
            f"The index files in {store.directory} disagree with its manifest "
            f"({vectors.ntotal} vectors, {len(documents)} documents, {len(expected)} in the manifest).",
            REBUILD_HINT)
    if vectors.d != manifest.get("dimension"):
        raise IndexMismatchError(
            f"The vectors in {store.directory} have dimension {vectors.d}, the manifest says "
            f"{manifest.get('dimension')}.", REBUILD_HINT)
    return LoadedIndex(manifest, documents, vectors, lexical)


def check_query(query: str) -> str:
    """The query with control characters and surplus space removed; empty ones are refused."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in query).split())
    if not cleaned:
        raise UsageError("The query is empty.", 'Ask a question, for example: paperscope search "LoRA"')
    return cleaned[:MAX_QUERY_CHARS]


def rank(index: LoadedIndex, *, query_text: str, query_vector: np.ndarray | None, mode: str,
         k: int, allowed: np.ndarray | None = None, exclude: int | None = None) -> list[tuple[int, float]]:
    """The top `k` (position, score) pairs among `allowed` documents (a boolean mask)."""
    if mode not in MODES:
        raise UsageError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    n = len(index.documents)
    mask = np.ones(n, dtype=bool) if allowed is None else allowed.copy()
    if exclude is not None:
        mask[exclude] = False
    if n == 0 or not mask.any():
        return []
    dense = _dense_scores(index, query_vector) if mode != "lexical" else None
    lexical = index.lexical.scores(query_text) if mode != "dense" else None
    if mode == "dense":
        scores = dense
    elif mode == "lexical":
        scores = lexical
        mask &= lexical > 0
    else:
        scores = fuse(dense, lexical, mask)
    scores = np.where(mask, scores, -np.inf)
    top = np.argsort(-scores, kind="stable")[:min(k, int(mask.sum()))]
    return [(int(i), float(scores[i])) for i in top]


def _dense_scores(index: LoadedIndex, query_vector: np.ndarray) -> np.ndarray:
    n = index.vectors.ntotal
    distances, positions = index.vectors.search(query_vector.astype(np.float32).reshape(1, -1), n)
    scores = np.full(n, -1.0, dtype=np.float32)
    valid = positions[0] >= 0
    scores[positions[0][valid]] = distances[0][valid]
    return scores


def fuse(dense: np.ndarray, lexical: np.ndarray, mask: np.ndarray,
         dense_weight: float = DENSE_WEIGHT, pool: int = POOL) -> np.ndarray:
    """Convex fusion of two score arrays, each min-max normalised over its top `pool`
    allowed documents; a ranker with no signal (all BM25 scores zero) adds nothing."""
    return dense_weight * _normalise(dense, mask, pool) + \
        (1.0 - dense_weight) * _normalise(lexical, mask, pool)


def _normalise(scores: np.ndarray, mask: np.ndarray, pool: int) -> np.ndarray:
    masked = np.where(mask, scores, -np.inf)
    count = min(pool, int(mask.sum()))
    top = np.argpartition(-masked, count - 1)[:count]
    high, low = masked[top].max(), masked[top].min()
    out = np.zeros_like(scores, dtype=np.float32)
    if not np.isfinite(high) or high <= 0 and low == high:
        return out
    spread = high - low
    out[top] = (masked[top] - low) / spread if spread > 0 else 1.0
    return out


def hits(index: LoadedIndex, ranked: Sequence[tuple[int, float]], query_text: str) -> list[Hit]:
    return [Hit(rank=n, score=score, document=index.documents[position],
                snippet=best_sentence(index.documents[position].text, query_text,
                                      index.lexical.tokenize))
            for n, (position, score) in enumerate(ranked, start=1)]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def best_sentence(text: str, query: str, tokenize: Callable[[str], list[str]],
                  limit: int = 240) -> str:
    """The sentence of `text` sharing the most terms with `query` (the first one on a tie)."""
    parts = sentences(text)
    if not parts:
        return ""
    wanted = set(tokenize(query))
    best = max(range(len(parts)), key=lambda i: (len(wanted & set(tokenize(parts[i]))), -i))
    sentence = parts[best]
    return sentence if len(sentence) <= limit else sentence[:limit - 1].rstrip() + "…"


def encode_query(encoder: Encoder, query: str) -> np.ndarray:
    return encoder.encode([query])[0]
