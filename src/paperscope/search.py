"""Loading an index and ranking its documents: dense (inner product with the normalised
passage vectors of a FAISS flat index, best passage per document), lexical (BM25) and
hybrid (a convex fusion of both)."""

from __future__ import annotations

import dataclasses
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
from .text import sentences

FORMAT_VERSION = 2
MODES = ("hybrid", "dense", "lexical")
MAX_QUERY_CHARS = 2000
# Fusion: each ranker's scores over the top POOL documents are min-max normalised and
# mixed with these weights (chosen on SciFact train; see "Quality" in README.md).
POOL = 1000
DENSE_WEIGHT = 0.5
NAME_BONUS = 1.0  # more than any fused score can differ by


@dataclass
class LoadedIndex:
    """An index in memory: documents, their vectors and their BM25 index."""

    manifest: dict
    documents: list[Document]
    vectors: object  # faiss.IndexFlatIP: one row per passage, documents' passages in order
    lexical: LexicalIndex
    bounds: np.ndarray  # document i's passages are rows bounds[i] to bounds[i + 1] - 1

    @property
    def model_name(self) -> str:
        return self.manifest["model"]

    def position(self, doc_id: str) -> int | None:
        if not hasattr(self, "_positions"):
            self._positions = {doc.id: i for i, doc in enumerate(self.documents)}
        return self._positions.get(doc_id)

    def named(self, query: str) -> list[int]:
        """Positions of documents that `query` names exactly (see `document_names`)."""
        if not hasattr(self, "_names"):
            self._names: dict[str, list[int]] = {}
            for position, document in enumerate(self.documents):
                for name in document_names(document):
                    self._names.setdefault(name, []).append(position)
        return self._names.get(_name_key(query), [])

    def vector(self, position: int) -> np.ndarray:
        """One vector for a document: the normalised mean of its passages' vectors."""
        mean = self._passages()[self.bounds[position]:self.bounds[position + 1]].mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)

    def best_passage_scores(self, query_vector: np.ndarray) -> np.ndarray:
        """Each document's best passage similarity to `query_vector` (MaxP): one product with
        every passage vector, then the maximum over each document's rows. (A FAISS search for
        all rows would return the same numbers, sorted, at ten times the cost.)"""
        similarities = self._passages() @ np.asarray(query_vector, dtype=np.float32)
        return np.maximum.reduceat(similarities, self.bounds[:-1])  # every document has a row

    def _passages(self) -> np.ndarray:
        """The flat index's vectors, read in place (no copy). The array points into
        `self.vectors`' memory, so it never leaves this object."""
        if not hasattr(self, "_matrix"):
            import faiss

            rows, dimension = self.vectors.ntotal, self.vectors.d
            self._matrix = (faiss.rev_swig_ptr(self.vectors.get_xb(), rows * dimension)
                            .reshape(rows, dimension) if rows else np.zeros((0, dimension), np.float32))
        return self._matrix


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
        vectors = None
    if not isinstance(vectors, faiss.IndexFlat):
        raise IndexCorruptError(f"The vector index in {store.directory} cannot be read.",
                                REBUILD_HINT)
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
    listed = manifest.get("documents", [])
    counts = [int(entry.get("passages", 0)) for entry in listed]
    if (vectors.ntotal != sum(counts) or lexical.num_docs != len(documents) or min(counts, default=1) < 1
            or [d.id for d in documents] != [entry["id"] for entry in listed]):
        raise IndexCorruptError(
            f"The index files in {store.directory} disagree with its manifest "
            f"({vectors.ntotal} vectors, {len(documents)} documents, {len(listed)} in the manifest).",
            REBUILD_HINT)
    if vectors.d != manifest.get("dimension"):
        raise IndexMismatchError(
            f"The vectors in {store.directory} have dimension {vectors.d}, the manifest says "
            f"{manifest.get('dimension')}.", REBUILD_HINT)
    bounds = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    return LoadedIndex(manifest, documents, vectors, lexical, bounds)


def _name_key(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def document_names(document: Document) -> set[str]:
    """What people call a document: its id, its title, the name before a colon in its title
    ("LoRA" in "LoRA: Low-Rank Adaptation ...") and names in parentheses ("RLHF", "Codex")."""
    title = document.title
    names = {document.id, title, *re.findall(r"\(([^()]{2,40})\)", title)}
    head = title.split(":", 1)[0]
    if ":" in title and len(head.split()) <= 4:
        names.add(head)
    keys = {_name_key(name) for name in names}
    return {key for key in keys if len(key) >= 2}


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
    dense = index.best_passage_scores(query_vector) if mode != "lexical" else None
    lexical = index.lexical.scores(query_text) if mode != "dense" else None
    if mode == "dense":
        scores = dense
    elif mode == "lexical":
        scores = lexical
        mask &= lexical > 0
    else:
        scores = fuse(dense, lexical, mask)
    if mode != "dense" and exclude is None:
        # A query that is exactly an entry's name puts that entry first.
        for position in index.named(query_text):
            scores[position] = scores[position] + NAME_BONUS
    scores = np.where(mask, scores, -np.inf)
    top = np.argsort(-scores, kind="stable")[:min(k, int(mask.sum()))]
    return [(int(i), float(scores[i])) for i in top]


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


class Searcher:
    """Answers queries against one loaded index; the query encoder is loaded once, on first use.

    The catalogue, arbitrary corpora and `eval` all rank through this class."""

    def __init__(self, index: LoadedIndex, encoder: Encoder | None = None):
        self.index = index
        self._encoder = encoder

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            from .embedding import load_encoder

            self._encoder = load_encoder(self.index.model_name, light=True)
            if self._encoder.dimension != self.index.vectors.d:
                raise IndexMismatchError(
                    f"The model {self.index.model_name} gives vectors of dimension "
                    f"{self._encoder.dimension}; the index holds {self.index.vectors.d}.", REBUILD_HINT)
        return self._encoder

    def rank(self, query: str, *, k: int, mode: str = "hybrid", allowed: np.ndarray | None = None,
             query_vector: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top `k` (position, score) pairs for a cleaned query."""
        if mode != "lexical" and query_vector is None:
            query_vector = self.encoder.encode([query])[0]
        return rank(self.index, query_text=query, query_vector=query_vector, mode=mode, k=k,
                    allowed=allowed)

    def search(self, query: str, *, k: int, mode: str = "hybrid",
               allowed: np.ndarray | None = None) -> list[Hit]:
        query = check_query(query)
        return hits(self.index, self.rank(query, k=k, mode=mode, allowed=allowed), query)

    def rank_related(self, position: int, *, k: int, mode: str = "hybrid",
                     allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top `k` (position, score) pairs of the documents closest to the one at `position`:
        its text is the lexical query and the mean of its passage vectors the dense one."""
        return rank(self.index, query_text=self.index.documents[position].embedding_text,
                    query_vector=self.index.vector(position), mode=mode, k=k,
                    allowed=allowed, exclude=position)

    def related(self, position: int, *, k: int, mode: str = "hybrid",
                allowed: np.ndarray | None = None) -> list[Hit]:
        """The `k` documents closest to the one at `position`, itself excluded."""
        document = self.index.documents[position]
        ranked = self.rank_related(position, k=k, mode=mode, allowed=allowed)
        shared = self.index.lexical.shared_terms
        return [dataclasses.replace(hit, shared_terms=tuple(shared(
                    position, other, document.embedding_text, hit.document.embedding_text)))
                for hit, (other, _) in zip(hits(self.index, ranked, document.embedding_text), ranked)]
