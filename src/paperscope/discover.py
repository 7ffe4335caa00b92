"""Discovery: papers of a corpus that belong near catalogue entries but are not in the catalogue.

Each chosen entry asks the corpus for its nearest papers, exactly as `related` does inside one
index (its text is the lexical query, the mean of its passage vectors the dense one). Papers
rank by their best fused score over the entries plus DEPTH_BONUS for every other entry that
also found it, up to MAX_BONUS, so papers close to several entries rise, but a generic paper
loosely near half the list never passes a close match of one entry; the score shown is the
best one (0-1).
Papers the catalogue already holds (by arXiv id or by exact title) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import IndexMismatchError, UsageError
from .records import Document, Entry
from .search import rank
from .text import name_key

if TYPE_CHECKING:
    from .index import OpenIndex

PER_ENTRY = 50  # candidates each entry asks the corpus for
DEPTH_BONUS = 0.05
MAX_BONUS = 0.10  # two more entries' worth


def ranking_score(scores: Sequence[float]) -> float:
    """What a paper ranks by, from its scores for each entry that found it (see above)."""
    return max(scores) + min(MAX_BONUS, DEPTH_BONUS * (len(scores) - 1))


@dataclass
class Closeness:
    """One catalogue entry a discovered paper is close to, and the words they share."""

    entry_id: str
    score: float
    shared_terms: list[str] = field(default_factory=list)


@dataclass
class Discovery:
    """A corpus paper not in the catalogue, ranked, with the entries it is closest to."""

    rank: int
    score: float  # its best relevance (0-1) to one of the entries
    entries: int  # how many of the chosen entries found it
    document: Document
    closest: list[Closeness]

    def to_json(self) -> dict[str, Any]:
        meta = self.document.meta
        return {"rank": self.rank, "score": round(self.score, 6), "entries": self.entries,
                "id": self.document.id,
                "title": self.document.title, "year": meta.get("year"), "url": meta.get("url"),
                "arxiv_id": meta.get("arxiv_id"), "categories": meta.get("categories"),
                "closest": [{"entry": c.entry_id, "score": round(c.score, 6),
                             "shared_terms": c.shared_terms} for c in self.closest]}


def discover(catalogue_index: OpenIndex, corpus: OpenIndex, entries: Sequence[Entry], *,
             known: Sequence[Entry], k: int = 20, since: str | None = None) -> list[Discovery]:
    """The `k` corpus papers closest to `entries` that are not among `known` entries; with
    `since` (YYYY[-MM[-DD]]), only those first posted on or after it."""
    if k < 1:
        raise UsageError(f"-k must be at least 1 (got {k}).")
    if catalogue_index.model_name != corpus.model_name or catalogue_index.dimension != corpus.dimension:
        raise IndexMismatchError(
            f"The corpus was embedded with {corpus.model_name} and the catalogue with "
            f"{catalogue_index.model_name}; their vectors cannot be compared.",
            "Build both with the same model (--model, or $PAPERSCOPE_MODEL).")
    seeds = [(entry, position) for entry in entries
             if (position := catalogue_index.position(entry.id)) is not None]
    if not seeds:
        raise UsageError("None of the chosen entries is in the catalogue's index yet.",
                         "Run: paperscope build")
    excluded = set()
    for entry in known:
        if entry.arxiv_id and (position := corpus.position(entry.arxiv_id)) is not None:
            excluded.add(position)
        excluded.update(corpus.named(name_key(entry.title)))
    allowed = None
    if since is not None:
        allowed = np.zeros(corpus.count, dtype=bool)
        allowed[corpus.dated_since(since)] = True
        if not allowed.any():
            return []
    found: dict[int, list[tuple[float, int]]] = {}
    texts = []
    for number, (_, position) in enumerate(seeds):
        text = catalogue_index.document(position).embedding_text
        texts.append(text)
        ranked = rank(corpus, query_text=text, query_vector=catalogue_index.document_vector(position),
                      mode="hybrid", k=PER_ENTRY + len(excluded), allowed=allowed)
        for found_position, score in ranked:
            if found_position not in excluded:
                found.setdefault(found_position, []).append((score, number))
    scored = sorted(((ranking_score([s for s, _ in hits]), position)
                     for position, hits in found.items()), key=lambda item: (-item[0], item[1]))[:k]
    documents = corpus.documents([position for _, position in scored])
    results = []
    for rank_number, ((_, position), document) in enumerate(zip(scored, documents, strict=True), start=1):
        closest = sorted(found[position], reverse=True)[:3]
        results.append(Discovery(rank_number, closest[0][0], len(found[position]), document, [
            Closeness(seeds[n][0].id, s, corpus.lexical.matching_terms(texts[n], position, limit=4))
            for s, n in closest]))
    return results
