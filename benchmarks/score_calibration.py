"""What a shown score means (issue 21): fit, and measure, the calibrated score of search.py.

usage: python benchmarks/score_calibration.py [--fit] [--scifact INDEX_DIR]

The score of a hit is a logistic model of P(relevant) from the hit's own evidence (the cosine
of its best passage, the IDF-weighted share of the query's terms it holds), so that 0.8 means
the same in every query. This script collects the top 10 hits (hybrid and dense, and lexical
for the lexical-only model) of every judged question in evaluation/catalogue, of every entry in
evaluation/related, and of the questions in evaluation/off-topic (which nothing in the
catalogue answers: every hit counts as not relevant), over the committed index.

Without --fit it measures the coefficients in search.CALIBRATION; with --fit it fits them
(Newton's method, a little ridge) and prints the lines to paste into search.py, then measures
those. It prints how well the score separates judged-relevant hits from the others: the AUC
pooled over all queries (against the old score, min-max fused per query), the same with 5-fold
cross-validation by query, the score's quantiles for relevant and other hits and for the best
hit of off-topic questions, a reliability table, and how often the "no close match" note
(search.WEAK_SCORE) fires. With --scifact, the search model (fitted on the catalogue) is also
measured on BEIR SciFact train, an index built with `paperscope build --corpus`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from paperscope import Library  # noqa: E402
from paperscope.beir import read_qrels, read_queries  # noqa: E402
from paperscope.index import IndexStore  # noqa: E402
from paperscope.search import (  # noqa: E402
    CALIBRATION,
    WEAK_SCORE,
    Calibration,
    Searcher,
    _relative,
    best_passage_scores,
    check_query,
    fuse,
    rank,
)
from paperscope.text import name_key  # noqa: E402

K = 10
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


@dataclass
class Hits:
    """One row per (query, hit): the features, the judgement, and what the old score was."""

    query: list[str]
    cosine: list[float]
    coverage: list[float]
    relevant: list[int]
    old: list[float]
    relative: list[float]
    named: list[bool]
    first: list[bool]  # the query's top hit (in the mode's ranking)
    off_topic: list[bool]

    @classmethod
    def empty(cls) -> Hits:
        return cls([], [], [], [], [], [], [], [], [])

    def arrays(self):
        return {key: np.asarray(value) for key, value in self.__dict__.items()}


def collect(searcher: Searcher, asked: dict[str, tuple[str, np.ndarray | None, int | None]],
            qrels: dict[str, dict[str, int]], modes: list[str], off_topic: bool, into: Hits) -> None:
    """Add the top K hits of each query in `modes` (a document once per query) to `into`.
    `asked`: query id -> (query text, query vector or None to encode, excluded position)."""
    index = searcher.index
    ids = index.ids()
    everything = np.ones(index.count, dtype=bool)
    for qid, (text, vector, exclude) in asked.items():
        if vector is None:
            vector = searcher.encoder.encode([text])[0]
        dense = best_passage_scores(index, vector)
        lexical = index.lexical.scores(text)
        mask = everything.copy()
        if exclude is not None:
            mask[exclude] = False
        old = fuse(dense, lexical, mask)
        named = set(index.named(name_key(text))) if exclude is None else set()
        for mode in modes:
            ranked = rank(index, query_text=text, query_vector=vector, mode=mode, k=K,
                          allowed=None, exclude=exclude)
            candidates = np.flatnonzero(mask & (lexical > 0)) if mode == "lexical" else np.flatnonzero(mask)
            mode_scores = {"hybrid": old, "dense": dense, "lexical": lexical}[mode]
            relative = np.zeros(index.count)
            relative[candidates] = _relative(mode_scores[candidates], mode)
            for n, (position, _) in enumerate(ranked):
                into.query.append(qid)
                into.cosine.append(float(dense[position]))
                into.coverage.append(float(index.lexical.coverage(text, np.array([position]))[0]))
                into.relevant.append(int(qrels.get(qid, {}).get(ids[position], 0) > 0))
                into.old.append(float(old[position]) if mode == "hybrid" else float(relative[position])
                                if mode == "lexical" else float(dense[position]))
                into.relative.append(float(relative[position]))
                into.named.append(position in named)
                into.first.append(n == 0)
                into.off_topic.append(off_topic)


def fit(features: dict[str, np.ndarray], relevant: np.ndarray, ridge: float = 1e-2) -> Calibration:
    """Logistic regression by Newton's method (a small ridge keeps it finite when separable).
    `features`: some of cosine, coverage, relative; the others get 0."""
    names = list(features)
    x = np.stack([np.ones(len(relevant))] + [features[n] for n in names], axis=1)
    w = np.zeros(x.shape[1])
    penalty = ridge * np.diag(np.r_[0.0, np.ones(len(names))])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        gradient = x.T @ (p - relevant) + penalty @ w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    weights = dict(zip(names, (float(v) for v in w[1:]), strict=True))
    return Calibration(intercept=float(w[0]), cosine=weights.get("cosine", 0.0),
                       coverage=weights.get("coverage", 0.0), relative=weights.get("relative", 0.0))


def features_of(data: dict, mode: str, rows=slice(None)) -> dict[str, np.ndarray]:
    """The features the mode's model reads (search.relevance): no cosine in lexical mode, no
    relative score in dense mode."""
    names = {"hybrid": ("cosine", "coverage", "relative"), "dense": ("cosine", "coverage"),
             "lexical": ("coverage", "relative")}[mode]
    return {name: data[name][rows] for name in names}


def predict(model: Calibration, data: dict, mode: str, rows=slice(None)) -> np.ndarray:
    return model(None if mode == "lexical" else data["cosine"][rows], data["coverage"][rows],
                 data["relative"][rows])


def auc(scores: np.ndarray, relevant: np.ndarray) -> float:
    """The chance that a relevant hit scores above another (ties count half)."""
    positive, negative = scores[relevant == 1], scores[relevant == 0]
    if not len(positive) or not len(negative):
        return float("nan")
    above = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return float(above / (len(positive) * len(negative)))


def cross_validated(data: dict, mode: str, folds: int = 5) -> np.ndarray:
    """Each query's hits scored by a model fitted on the other folds' queries."""
    queries = data["query"]
    fold_of = {name: i % folds for i, name in enumerate(sorted(set(queries)))}
    fold = np.array([fold_of[q] for q in queries])
    out = np.zeros(len(queries))
    for f in range(folds):
        train, test = (fold != f) & ~data["named"], fold == f
        model = fit(features_of(data, mode, train), data["relevant"][train])
        out[test] = predict(model, data, mode, test)
    return out


def quantiles(values: np.ndarray) -> str:
    if not len(values):
        return "-"
    q = np.quantile(values, [0.1, 0.25, 0.5, 0.75, 0.9])
    return " ".join(f"{v:.2f}" for v in q)


def report(name: str, model: Calibration, data: dict, mode: str, old: bool = True) -> None:
    judged = ~data["off_topic"]
    score = np.where(data["named"], 1.0, predict(model, data, mode))
    relevant = data["relevant"]
    held_out = np.where(data["named"], 1.0, cross_validated(data, mode))
    print(f"\n{name}: {int(judged.sum())} hits of {len(set(data['query'][judged]))} judged queries "
          f"({int(relevant.sum())} relevant), {int((~judged).sum())} hits of "
          f"{len(set(data['query'][~judged]))} off-topic queries")
    line = (f"  AUC, all hits pooled: calibrated {auc(score, relevant):.3f}, "
            f"5-fold held out {auc(held_out, relevant):.3f}")
    if old:
        line += f"; the old score {auc(data['old'], relevant):.3f}"
    print(line)
    print(f"  AUC, judged queries only: calibrated {auc(score[judged], relevant[judged]):.3f}"
          + (f", old {auc(data['old'][judged], relevant[judged]):.3f}" if old else ""))
    print("  score quantiles (10% 25% 50% 75% 90%):")
    print(f"    relevant hits            {quantiles(score[relevant == 1])}")
    print(f"    other hits, judged       {quantiles(score[(relevant == 0) & judged])}")
    firsts = data["first"]
    if (~judged).any():
        print(f"    best hit, off-topic      {quantiles(score[firsts & ~judged])}")
    if old:
        print("  the old score, for comparison:")
        print(f"    relevant hits            {quantiles(data['old'][relevant == 1])}")
        print(f"    other hits, judged       {quantiles(data['old'][(relevant == 0) & judged])}")
        if (~judged).any():
            print(f"    best hit, off-topic      {quantiles(data['old'][firsts & ~judged])}")
    print("  reliability: score band -> hits, share relevant")
    edges = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0001]
    for low, high in itertools.pairwise(edges):
        band = (score >= low) & (score < high)
        share = f"{relevant[band].mean():.2f}" if band.any() else "-"
        print(f"    {low:.1f}-{min(high, 1.0):.1f}  {int(band.sum()):>4}  {share}")
    weak_judged = score[firsts & judged] < WEAK_SCORE
    print(f"  'no close match' (best hit under {WEAK_SCORE}): judged queries {int(weak_judged.sum())}"
          f"/{int((firsts & judged).sum())}" + (
              f", off-topic queries {int((score[firsts & ~judged] < WEAK_SCORE).sum())}/"
              f"{int((firsts & ~judged).sum())}" if (~judged).any() else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fit", action="store_true", help="fit the coefficients and print them")
    parser.add_argument("--scifact", type=Path, help="a SciFact index folder, to measure the search model there")
    args = parser.parse_args()
    library = Library.open(ROOT)
    index, _ = library.index(update=False)
    searcher = Searcher(index)
    catalogue = ROOT / "evaluation" / "catalogue"
    queries, qrels = read_queries(catalogue), read_qrels(catalogue, "test")
    off_topic = read_queries(ROOT / "evaluation" / "off-topic")
    related_qrels = read_qrels(ROOT / "evaluation" / "related", "test")
    positions = {doc_id: p for p, doc_id in enumerate(index.ids())}

    data: dict[tuple[str, str], dict] = {}
    for kind in ("search", "related"):
        for mode in ("hybrid", "dense", "lexical"):
            hits = Hits.empty()
            if kind == "search":
                asked = {q: (check_query(queries[q]), None, None) for q in qrels if q in queries}
                collect(searcher, asked, qrels, [mode], False, hits)
                collect(searcher, {q: (check_query(t), None, None) for q, t in off_topic.items()},
                        {}, [mode], True, hits)
            else:
                asked = {q: (index.document(positions[q]).embedding_text, index.document_vector(positions[q]),
                             positions[q]) for q in related_qrels if q in positions}
                collect(searcher, asked, related_qrels, [mode], False, hits)
            data[(kind, mode)] = hits.arrays()

    models = dict(CALIBRATION)
    if args.fit:
        print("CALIBRATION = {")
        for (kind, mode), arrays in data.items():
            train = ~arrays["named"]
            fitted = models[(kind, mode)] = fit(features_of(arrays, mode, train), arrays["relevant"][train])
            print(f'    ("{kind}", "{mode}"): Calibration(intercept={fitted.intercept:.3f}, '
                  f"cosine={fitted.cosine:.3f}, coverage={fitted.coverage:.3f}, "
                  f"relative={fitted.relative:.3f}),")
        print("}")
    for (kind, mode), arrays in data.items():
        report(f"{kind}, {mode} top {K}", models[(kind, mode)], arrays, mode)

    if args.scifact:
        scifact_index = IndexStore(args.scifact).open()
        scifact = Searcher(scifact_index)
        sq, sqrels = read_queries(SCIFACT), read_qrels(SCIFACT, "train")
        hits = Hits.empty()
        asked = {q: (check_query(sq[q]), None, None) for q in sqrels if q in sq}
        collect(scifact, asked, sqrels, ["hybrid"], False, hits)
        report(f"SciFact train ({scifact_index.count} documents), hybrid top {K}, "
               "the catalogue's search model", models[("search", "hybrid")], hits.arrays(), "hybrid")
        print(json.dumps({"note": "SciFact judges few documents per claim, so many unjudged hits "
                          "are relevant in fact: its shares are lower bounds"}))


if __name__ == "__main__":
    main()
