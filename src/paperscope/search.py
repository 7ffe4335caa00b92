"""Ranking the documents of an open index: dense (inner product of the query with the
normalised passage vectors, best passage per document), lexical (BM25) and hybrid (a convex
fusion of both). Exact indexes score every passage with one product; approximate ones ask the
FAISS IVF index for candidates and score those exactly. Reading files is index.py's work."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import numpy as np

from .embedding import Encoder, load_encoder, query_encoders
from .errors import IndexMismatchError, UsageError
from .index import REBUILD_HINT, OpenIndex
from .records import Hit
from .text import name_key, sentences, shorten

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "lexical")
# The one limit on a query, for the CLI, the Python API, the web API and MCP: longer ones are
# refused (the model reads about 256 tokens; a question is far shorter).
MAX_QUERY_CHARS = 1000
# Fusion: each ranker's scores over the top POOL documents are min-max normalised and
# mixed with these weights (chosen on SciFact train; see "Quality" in README.md).
POOL = 1000
DENSE_WEIGHT = 0.5
NAME_BONUS = 1.0  # more than any fused score can differ by
# With filters on an approximate index, up to this many allowed documents are scored exactly.
EXACT_FILTERED = 20_000
# An approximate index is asked for the passages nearest to the query in this share of its
# lists, and for as many candidates as fusion normalises over, which it then re-scores
# exactly: recall@10 against exact search 0.98 (dense) and 0.99 (hybrid) on the 108,874 real
# arXiv abstracts (README "Large corpora"; benchmarks/scale.py).
PROBE_SHARE = 0.10
MIN_PROBE = 16


def check_query(query: str) -> str:
    """The query with control characters and surplus space removed; empty ones and ones
    longer than MAX_QUERY_CHARS are refused."""
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in query).split())
    if not cleaned:
        raise UsageError("The query is empty.", 'Ask a question, for example: paperscope search "LoRA"')
    if len(cleaned) > MAX_QUERY_CHARS:
        raise UsageError(f"The query is {len(cleaned):,} characters long; the most is "
                         f"{MAX_QUERY_CHARS:,}.", "Ask a question or give keywords, not a whole text.")
    return cleaned


def best_passage_scores(index: OpenIndex, query_vector: np.ndarray,
                        positions: np.ndarray | None = None) -> np.ndarray:
    """Each document's best passage similarity to `query_vector` (MaxP), for every document
    or for the sorted `positions` only. (A FAISS search over all rows would return the same
    numbers, sorted, at ten times the cost.)"""
    query = np.asarray(query_vector, dtype=np.float32)
    bounds = np.asarray(index.bounds)
    if positions is None:
        if not index.count:
            return np.zeros(0, np.float32)
        if index.vectors.dtype == np.float32:
            return np.maximum.reduceat(index.vectors @ query, bounds[:-1])
        # float16 vectors (large indexes) are scored a block at a time, in float32
        similarity = np.empty(len(index.vectors), dtype=np.float32)
        for start in range(0, len(index.vectors), 1 << 18):
            block = index.vectors[start:start + (1 << 18)]
            similarity[start:start + len(block)] = block.astype(np.float32) @ query
        return np.maximum.reduceat(similarity, bounds[:-1])
    if len(positions) == 0:
        return np.zeros(0, np.float32)
    starts, ends = bounds[positions], bounds[positions + 1]
    lengths = ends - starts
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rows = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
    return np.maximum.reduceat(index.vectors[rows].astype(np.float32, copy=False) @ query, offsets)


def approximate_candidates(index: OpenIndex, query_vector: np.ndarray, wanted: int) -> np.ndarray:
    """Positions of the documents whose passages the approximate index finds nearest."""
    import faiss

    faiss.omp_set_num_threads(1)  # one query: threads would only fight over busy cores
    ann = index.ann
    ivf = faiss.extract_index_ivf(ann)
    ivf.nprobe = min(ivf.nlist, max(MIN_PROBE, math.ceil(ivf.nlist * PROBE_SHARE)))
    _, rows = ann.search(np.asarray(query_vector, dtype=np.float32)[None], max(POOL, wanted))
    rows = rows[0][rows[0] >= 0]
    return np.unique(np.searchsorted(np.asarray(index.bounds), rows, side="right") - 1)


def rank(index: OpenIndex, *, query_text: str, query_vector: np.ndarray | None, mode: str,
         k: int, allowed: np.ndarray | None = None, exclude: int | None = None,
         query_terms: Sequence[str] | None = None) -> list[tuple[int, float]]:
    """The top `k` (position, score) pairs among `allowed` documents (a boolean mask);
    `query_terms`: the query text as the lexical index tokenises it, when already known."""
    if mode not in MODES:
        raise UsageError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    n = index.count
    mask = np.ones(n, dtype=bool) if allowed is None else allowed.copy()
    if exclude is not None:
        mask[exclude] = False
    if n == 0 or not mask.any():
        return []
    named = index.named(name_key(query_text)) if mode != "dense" and exclude is None else []
    lexical = index.lexical.scores(query_text if query_terms is None else query_terms) \
        if mode != "dense" else None
    dense = None
    if mode != "lexical":
        dense = _dense(index, query_vector, mask, lexical, named, k)
        mask &= np.isfinite(dense)
    if mode == "lexical":
        assert lexical is not None
        mask &= lexical > 0
    # From here on only the candidates count: all documents of an exact index, the approximate
    # index's candidates otherwise, so that fusing and sorting cost what the hits cost.
    positions = np.flatnonzero(mask)
    if len(positions) == 0:
        return []
    if mode == "dense":
        assert dense is not None
        scores = dense[positions]
    elif mode == "lexical":
        assert lexical is not None
        scores = lexical[positions]
    else:
        assert dense is not None and lexical is not None
        scores = fuse(dense[positions], lexical[positions], np.ones(len(positions), dtype=bool))
    at = np.searchsorted(positions, np.asarray(named, dtype=np.int64))
    named_at = at[(at < len(positions)) & (positions[np.minimum(at, len(positions) - 1)] == named)]
    ranking = scores.copy()
    ranking[named_at] += NAME_BONUS  # a query that is exactly an entry's name puts that entry first
    count = min(k, len(positions))
    if len(positions) > 50_000:  # select before sorting; ties broken by position, as a stable sort
        top = np.argpartition(-ranking, count - 1)[:count]
        top = top[np.lexsort((top, -ranking[top]))]
    else:
        top = np.argsort(-ranking, kind="stable")[:count]
    shown = relevance(index, query_text, positions[top], None if dense is None else dense[positions[top]],
                      _relative(scores, mode)[top], mode=mode, related=exclude is not None)
    shown[np.isin(top, named_at)] = 1.0
    return [(int(positions[i]), float(shown[n])) for n, i in enumerate(top)]


@dataclass(frozen=True)
class Calibration:
    """A logistic model of P(relevant) from a hit's evidence: the cosine similarity of its best
    passage to the query, the IDF-weighted share of the query's terms it holds, and its score
    relative to the query's other candidates (see `_relative`)."""

    intercept: float
    cosine: float
    coverage: float
    relative: float

    def __call__(self, cosine: np.ndarray | None, coverage: np.ndarray, relative: np.ndarray) -> np.ndarray:
        z = self.intercept + self.coverage * coverage + self.relative * relative
        if cosine is not None:
            z = z + self.cosine * cosine
        return 1.0 / (1.0 + np.exp(-z))


# The shown score: a probability-like relevance that means the same in every query (of hits
# scored 0.8, about eight in ten are relevant, whatever the query), fitted with a logistic
# regression on the judged sets (evaluation/catalogue, with evaluation/off-topic's questions
# whose every hit is not relevant, for search; evaluation/related for related entries) by
# `python benchmarks/score_calibration.py --fit`, which prints these lines and how well the
# score separates judged-relevant hits from the others (docs/experiments.md, "What a score
# means"). Fitted on the default model's cosines (all-MiniLM-L6-v2).
CALIBRATION = {
    ("search", "hybrid"): Calibration(intercept=-5.514, cosine=3.145, coverage=4.470, relative=1.999),
    ("search", "dense"): Calibration(intercept=-4.524, cosine=2.388, coverage=6.168, relative=0.000),
    ("search", "lexical"): Calibration(intercept=-4.260, cosine=0.000, coverage=6.008, relative=0.763),
    ("related", "hybrid"): Calibration(intercept=-8.744, cosine=3.562, coverage=2.859, relative=7.846),
    ("related", "dense"): Calibration(intercept=-8.543, cosine=9.305, coverage=15.803, relative=0.000),
    ("related", "lexical"): Calibration(intercept=-4.401, cosine=0.000, coverage=2.354, relative=4.874),
}
# Under this score even the best hit is a weak match: `search` says so ("No close match").
WEAK_SCORE = 0.3


def _relative(scores: np.ndarray, mode: str) -> np.ndarray:
    """The mode's ranking scores as a 0-1 share of the query's best: the fused score (already
    so), the cosine (dense: not relative, the cosine feature carries it; 0 here), or BM25
    divided by the query's best BM25 score (lexical)."""
    if mode == "dense":
        return np.zeros(len(scores))
    if mode == "lexical":
        top = float(scores.max()) if len(scores) else 0.0
        return scores / top if top > 0 else np.zeros(len(scores))
    return np.asarray(scores, dtype=np.float64)


def relevance(index: OpenIndex, query_text: str, positions: np.ndarray, cosine: np.ndarray | None,
              relative: np.ndarray, *, mode: str, related: bool = False) -> np.ndarray:
    """The shown 0-1 score of the documents at `positions` (see CALIBRATION), from their
    cosines (None in lexical mode), query-term coverage and relative scores (`_relative`)."""
    model = CALIBRATION[("related" if related else "search", mode)]
    cosines = None if cosine is None else np.asarray(cosine, dtype=np.float64)
    return model(cosines, index.lexical.coverage(query_text, positions), relative)


def _dense(index: OpenIndex, query_vector, mask: np.ndarray, lexical: np.ndarray | None,
           named: list[int], k: int) -> np.ndarray:
    """Dense scores: exact for every document of an exact index; for an approximate one,
    exact for its candidates (and the lexical top and named documents), -inf elsewhere."""
    if index.ann is None:
        return best_passage_scores(index, query_vector)
    allowed = np.flatnonzero(mask)
    if len(allowed) <= EXACT_FILTERED:
        candidates = allowed
    else:
        found = approximate_candidates(index, query_vector, wanted=k * (1 if len(allowed) == len(mask) else 8))
        extra = [found, np.asarray(named, dtype=np.int64)]
        if lexical is not None:
            masked = np.where(mask, lexical, -np.inf)
            pool = min(POOL, len(allowed))
            top = np.argpartition(-masked, pool - 1)[:pool]
            extra.append(top[masked[top] > 0])
        candidates = np.unique(np.concatenate(extra)).astype(np.int64)
    dense = np.full(index.count, -np.inf, dtype=np.float32)
    dense[candidates] = best_passage_scores(index, query_vector, candidates)
    return dense


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
    if not np.isfinite(high) or (high <= 0 and low == high):
        return out
    spread = high - low
    out[top] = (masked[top] - low) / spread if spread > 0 else 1.0
    return out


def hits(index: OpenIndex, ranked: Sequence[tuple[int, float]], query_terms: Sequence[str]) -> list[Hit]:
    """The ranked documents, each with the sentence that best matches the query's terms."""
    documents = index.documents([position for position, _ in ranked])
    wanted = set(query_terms)
    return [Hit(rank=n, score=score, document=document, weak=score < WEAK_SCORE,
                snippet=best_sentence(document.text, wanted, index.lexical.tokenize.term_set))
            for n, ((_, score), document) in enumerate(zip(ranked, documents, strict=True), start=1)]


def best_sentence(text: str, wanted: set[str], term_set: Callable[[str], AbstractSet[str]],
                  limit: int = 240) -> str:
    """The sentence of `text` sharing the most of the terms `wanted` (the first one on a tie);
    `term_set`: a text's terms (`Tokenizer.term_set`)."""
    parts = sentences(text)
    if len(parts) < 2:
        return shorten(parts[0], limit) if parts else ""
    best = max(range(len(parts)), key=lambda i: (len(wanted & term_set(parts[i])), -i))
    sentence = parts[best]
    return shorten(sentence, limit)


class Searcher:
    """Answers queries against one loaded index; the query encoder is loaded once, on first use.

    The catalogue, arbitrary corpora and `eval` all rank through this class."""

    def __init__(self, index: OpenIndex, encoder: Encoder | None = None, model: str | None = None,
                 *, resident: bool = False):
        """`model`: the one model queries may be encoded with (a catalogue's configured one);
        None: the model the index names (a corpus of the user's own). `resident`: a
        long-running process, whose encoder may take longer to load if it encodes faster."""
        self.index = index
        self._encoder = encoder
        self.model = model
        self.resident = resident

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            if self.model is not None and self.model != self.index.model_name:
                # Never the model a (cloned) index names: it could be any folder on this machine.
                raise IndexMismatchError(
                    f"The index was built with the model {self.index.model_name}; paperscope is "
                    f"set to use {self.model}.", "Rebuild it with: paperscope build (or set "
                    "PAPERSCOPE_MODEL to the index's model)")

            self._encoder = load_encoder(self.index.model_name,
                                         kinds=query_encoders(self.index.manifest.encoder,
                                                               resident=self.resident))
            if self._encoder.dimension != self.index.dimension:
                raise IndexMismatchError(
                    f"The model {self.index.model_name} gives vectors of dimension "
                    f"{self._encoder.dimension}; the index holds {self.index.dimension}.", REBUILD_HINT)
        return self._encoder

    def rank(self, query: str, *, k: int, mode: str = "hybrid", allowed: np.ndarray | None = None,
             query_vector: np.ndarray | None = None,
             query_terms: Sequence[str] | None = None) -> list[tuple[int, float]]:
        """Top `k` (position, score) pairs for a cleaned query (see `check_query`)."""
        if mode != "lexical" and query_vector is None:
            query_vector = self.encoder.encode([query])[0]
        return rank(self.index, query_text=query, query_vector=query_vector, mode=mode, k=k,
                    allowed=allowed, query_terms=query_terms)

    def search(self, query: str, *, k: int, mode: str = "hybrid", allowed: np.ndarray | None = None,
               query_terms: Sequence[str] | None = None) -> list[Hit]:
        """The top `k` hits for a cleaned query (see `check_query`), with snippets."""
        terms = self.index.lexical.tokenize(query) if query_terms is None else query_terms
        started = time.perf_counter()
        ranked = self.rank(query, k=k, mode=mode, allowed=allowed, query_terms=terms)
        log.info("ranked %d documents for %r (%s) in %.0f ms", self.index.count, query, mode,
                 (time.perf_counter() - started) * 1000)
        return hits(self.index, ranked, terms)

    def rank_related(self, position: int, *, k: int, mode: str = "hybrid",
                     allowed: np.ndarray | None = None,
                     query_terms: Sequence[str] | None = None) -> list[tuple[int, float]]:
        """Top `k` (position, score) pairs of the documents closest to the one at `position`:
        its text is the lexical query and the mean of its passage vectors the dense one."""
        return rank(self.index, query_text=self.index.document(position).embedding_text,
                    query_vector=self.index.document_vector(position), mode=mode, k=k,
                    allowed=allowed, exclude=position, query_terms=query_terms)

    def related(self, position: int, *, k: int, mode: str = "hybrid",
                allowed: np.ndarray | None = None) -> list[Hit]:
        """The `k` documents closest to the one at `position`, itself excluded."""
        document = self.index.document(position)
        terms = self.index.lexical.tokenize(document.embedding_text)
        ranked = self.rank_related(position, k=k, mode=mode, allowed=allowed, query_terms=terms)
        shared = self.index.lexical.shared_terms
        return [dataclasses.replace(hit, shared_terms=tuple(shared(
                    position, other, document.embedding_text, hit.document.embedding_text)))
                for hit, (other, _) in zip(hits(self.index, ranked, terms), ranked, strict=True)]
