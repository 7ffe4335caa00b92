"""Approximate search's candidates and re-scoring, quantised: recall@10 against exact float32
search on clustered synthetic vectors (no model needed).

usage: python benchmarks/quantisation.py [--vectors 300000] [--queries 200]

Vectors: 384 dimensions, unit length, drawn around 3,000 random centres (spread 0.35, the noise
benchmarks/scale.py adds to copies), so that nearest neighbours are a handful of close vectors
among many far ones, as in real abstracts. Queries: other draws around random centres.
Each variant builds `paperscope`'s IVF index (2·√n lists, 64 training vectors a list, 10% of the
lists probed for 1,000 candidates) with a scalar quantiser and re-scores the candidates from
vectors stored as float32, float16 or int8 (one scale per dimension): what search.py does.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def clustered(count: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    picks = rng.integers(0, len(centres), count)
    noise = rng.standard_normal((count, centres.shape[1])).astype(np.float32)
    out = centres[picks] + noise * (0.35 / math.sqrt(centres.shape[1]))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    import faiss

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=300_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((3000, 384)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered(args.vectors, rng, centres)
    queries = clustered(args.queries, rng, centres)
    truth = [set(np.argsort(-(vectors @ q), kind="stable")[:10]) for q in queries]
    lo, hi = vectors.min(axis=0), vectors.max(axis=0)
    scale = (hi - lo) / 255
    stored = {"float32": vectors, "float16": vectors.astype(np.float16),
              "int8": np.round((vectors - lo) / scale).astype(np.uint8)}

    def rescore(kind: str, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
        block = stored[kind][rows]
        if kind == "int8":
            return (block.astype(np.float32) * scale + lo) @ q
        return block.astype(np.float32) @ q

    lists = int(min(65536, max(1, min(args.vectors // 39, 2 * math.sqrt(args.vectors)))))
    sample = rng.choice(args.vectors, size=min(args.vectors, 64 * lists), replace=False)
    print(f"{args.vectors:,} vectors, {lists} lists, {args.queries} queries")
    print("| candidates from | re-scored from | recall@10 | ms a query | index bytes a vector "
          "| vectors bytes a vector |")
    print("|---|---|---|---|---|---|")
    for name, qt, code in (("IVF-SQ8", faiss.ScalarQuantizer.QT_8bit, 384),
                           ("IVF-SQ4", faiss.ScalarQuantizer.QT_4bit, 192)):
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(384), 384, lists, qt, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 15
        index.train(vectors[sample])
        index.add(vectors)
        index.nprobe = max(16, math.ceil(lists * 0.10))
        for kind in ("float32", "float16", "int8"):
            found, begun = [], time.perf_counter()
            for q, want in zip(queries, truth, strict=True):
                _, rows = index.search(q[None], 1000)
                rows = rows[0][rows[0] >= 0]
                top = rows[np.argsort(-rescore(kind, rows, q), kind="stable")[:10]]
                found.append(len(want & set(top.tolist())) / 10)
            ms = (time.perf_counter() - begun) * 1000 / len(queries)
            print(f"| {name} | {kind} | {np.mean(found):.3f} | {ms:.1f} | {code} | "
                  f"{stored[kind].itemsize * 384} |", flush=True)


if __name__ == "__main__":
    main()
