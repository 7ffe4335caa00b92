"""Retrieval quality: nDCG@10, Recall@100 and MRR@10 of each ranking mode over
judged queries, and per-query latency, measured through the same `Searcher`
that answers `paperscope search` (or, for judged related entries, `related`)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .collection import Collection
from .errors import UsageError
from .search import MODES, check_query


def ndcg(ranked: Sequence[str], judged: dict[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain with linear gains (as pytrec_eval and BEIR)."""
    gain = sum(judged.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(
        (g for g in judged.values() if g > 0), reverse=True)[:k]))
    return gain / ideal if ideal > 0 else 0.0


def recall(ranked: Sequence[str], judged: dict[str, int], k: int = 100) -> float:
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def reciprocal_rank(ranked: Sequence[str], judged: dict[str, int], k: int = 10) -> float:
    return next((1.0 / (i + 1) for i, doc in enumerate(ranked[:k]) if judged.get(doc, 0) > 0), 0.0)


@dataclass
class ModeScores:
    mode: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    queries: int
    latency_ms_median: float
    latency_ms_p95: float

    def to_json(self) -> dict:
        return {key: round(value, 4) if isinstance(value, float) else value
                for key, value in self.__dict__.items()}


def evaluate(collection: Collection, queries: dict[str, str], qrels: dict[str, dict[str, int]],
             modes: Sequence[str] | None = None,
             progress: Callable[[int], None] | None = None, *, related: bool = False) -> list[ModeScores]:
    """Scores of each mode over the queries that have judgements, against the collection's
    index as it is. With `related`, each query id is a document id and its ranking is that
    document's related documents."""
    modes = modes or MODES
    for mode in modes:
        if mode not in MODES:
            raise UsageError(f"Unknown mode {mode!r}: choose from {', '.join(MODES)}.")
    searcher = collection.searcher()
    ids = searcher.index.ids()
    positions = {doc_id: position for position, doc_id in enumerate(ids)}
    asked = positions if related else queries
    judged_ids = [qid for qid in qrels if qid in asked and any(g > 0 for g in qrels[qid].values())]
    if any(mode != "lexical" for mode in modes):
        searcher.encoder.encode(["warm-up"])  # load the encoder before timing starts
    results = []
    for mode in modes:
        totals = [0.0, 0.0, 0.0]
        latencies = []
        for qid in judged_ids:
            started = time.perf_counter()
            ranked = (searcher.rank_related(positions[qid], k=100, mode=mode) if related
                      else searcher.rank(check_query(queries[qid]), k=100, mode=mode))
            latencies.append((time.perf_counter() - started) * 1000)
            ranked_ids = [ids[position] for position, _ in ranked]
            judged = qrels[qid]
            totals[0] += ndcg(ranked_ids, judged)
            totals[1] += recall(ranked_ids, judged)
            totals[2] += reciprocal_rank(ranked_ids, judged)
            if progress:
                progress(1)
        count = max(len(judged_ids), 1)
        latencies.sort()
        results.append(ModeScores(
            mode=mode, ndcg_at_10=totals[0] / count, recall_at_100=totals[1] / count,
            mrr_at_10=totals[2] / count, queries=len(judged_ids),
            latency_ms_median=statistics.median(latencies) if latencies else 0.0,
            latency_ms_p95=latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0))
    return results
