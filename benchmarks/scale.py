"""Search at scale: 10,000 to 3,000,000 documents side by side with the catalogue.

usage: python benchmarks/scale.py [--sizes 10000 100000 1000000 3000000] [--runs 5]
                                  [--queries 200] [--queries-from titles|vectors]
                                  [--chunks DIR] [--work DIR] [--searches-only]

Real texts: the 108,874 records of ../shared/data/arxiv-snapshot-108k.jsonl.gz, imported with
`paperscope corpus import` (the larger sizes repeat them under new ids and numbered titles). Vectors: the real ones
where `--chunks` holds the chunk files `benchmarks/gpu_corpus.py embed` made for the 108k
snapshot (all-MiniLM-L6-v2, whole abstracts); copies for sizes beyond 108,874 are the real
vector of the same text plus Gaussian noise (norm 0.35), renormalised, so that they keep the
corpus's cluster structure. Without --chunks every vector is synthetic. Vectors enter each
corpus as drop-in chunk files, so `paperscope corpus build` embeds nothing and its time is
the build time excluding embedding.

For each size it prints: index size on disk (and by file), import and build time (excluding
embedding) with the peak memory (maximum resident set) of each,
cold `paperscope search` wall time (a new process each run, median of --runs; the OS page
cache is warm), warm search through the Python API (median of 50 queries), peak memory of
one search (maximum resident set of the process), and recall@10 of the index's search
against exact search on 200 queries (--queries; titles of random documents, embedded by the light
encoder, or with --queries-from vectors the documents' own vectors, which is what measures
synthetic vectors: a title's vector has no neighbourhood among them): dense (what the
approximate index answers) and hybrid. The catalogue's own cold
search is timed in the same run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from paperscope import chunks  # noqa: E402
from paperscope.corpora import Corpus, ImportReport, parse_snapshot_line  # noqa: E402
from paperscope.settings import DEFAULT_MODEL  # noqa: E402

SNAPSHOT = ROOT.parent / "shared" / "data" / "arxiv-snapshot-108k.jsonl.gz"
QUERIES = ["speculative decoding for faster LLM inference", "exoplanet atmosphere transmission spectra",
           "parameter-efficient finetuning", "diffusion models for video generation",
           "retrieval-augmented generation hallucination"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def real_records() -> list[tuple[dict, bytes]]:
    """The snapshot's records as (parsed data, line), in file order."""
    report, out = ImportReport(), []
    with gzip.open(SNAPSHOT, "rb") as handle:
        for line in handle:
            if parse_snapshot_line(line, report) is not None:
                out.append((json.loads(line), line))
    return out


def write_snapshot(path: Path, records: list[tuple[dict, bytes]], size: int) -> None:
    """`size` snapshot lines: the real records, then copies under new ids."""
    with open(path, "wb") as out:
        for n in range(size):
            data, line = records[n % len(records)]
            if n < len(records):
                out.write(line if line.endswith(b"\n") else line + b"\n")
            else:
                copy = dict(data, id=f"{data['id']}.c{n // len(records)}",
                            title=f"{data['title']} [{n // len(records)}]")
                out.write(json.dumps(copy).encode() + b"\n")


def real_vectors(chunk_dir: Path | None) -> dict[str, np.ndarray]:
    """Content hash -> float32 vector, from chunk files made on a GPU."""
    found: dict[str, np.ndarray] = {}
    for path in chunks.chunk_files(chunk_dir) if chunk_dir else []:
        info = chunks.read_chunk_info(path)
        if info is not None and info.model == DEFAULT_MODEL and info.scheme == "whole":
            found.update(zip(info.hashes, chunks.read_vectors(path), strict=True))
    return found


def drop_in_chunks(corpus: Corpus, known: dict[str, np.ndarray], base_count: int) -> None:
    """Chunk files with a vector for every document of the corpus (see the module docstring)."""
    from paperscope.corpora import StagedDocuments

    rng = np.random.default_rng(7)
    documents = StagedDocuments(corpus.staged_path)
    corpus.store.chunks_dir.mkdir(parents=True, exist_ok=True)
    batch_hashes, batch_vectors, start = [], [], 0
    base: dict[str, np.ndarray] = {}
    for position, doc in enumerate(documents):
        h = doc.content_hash
        original = doc.id.rsplit(".c", 1)[0] if ".c" in doc.id else doc.id
        vector = known.get(h)
        if vector is None:
            seed = base.get(original)
            if seed is None:
                seed = rng.standard_normal(384).astype(np.float32)
                seed /= np.linalg.norm(seed)
            vector = seed + rng.standard_normal(384).astype(np.float32) * (0.35 / np.sqrt(384))
            vector /= np.linalg.norm(vector)
        if position < base_count:
            base[doc.id] = vector
        batch_hashes.append(h)
        batch_vectors.append(vector)
        if len(batch_hashes) == 50_000 or position == len(documents) - 1:
            chunks.write_chunk(corpus.store.chunks_dir, model=DEFAULT_MODEL, scheme="whole",
                               source=f"corpus:{corpus.name}", start=start, hashes=batch_hashes,
                               counts=[1] * len(batch_hashes),
                               vectors=np.array(batch_vectors, dtype=np.float16), dtype="float16")
            start, batch_hashes, batch_vectors = position + 1, [], []
    documents.close()


CPU_SECONDS: dict[str, float] = {}  # command -> user + system seconds of its last run


def timed(command: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak resident kB and stdout of one run in a new process (its CPU seconds
    go to CPU_SECONDS: on a shared machine they say more than the wall time)."""
    result = subprocess.run(["/usr/bin/time", "-f", "%e %M %U %S", *command], capture_output=True,
                            text=True, env=ENV, check=True)
    seconds, peak, user, system = result.stderr.strip().splitlines()[-1].split()
    CPU_SECONDS[" ".join(command[:3])] = float(user) + float(system)
    return float(seconds), int(peak), result.stdout


def cold_search(runs: int, *, global_options: tuple[str, ...] = (),
                options: tuple[str, ...] = ()) -> tuple[float, int]:
    """Median wall seconds and peak kB of `paperscope search`, a new process each run."""
    times, peaks = [], []
    for n in range(runs):
        seconds, peak, _ = timed(["paperscope", *global_options, "search", QUERIES[n % len(QUERIES)],
                                  "-k", "10", *options])
        times.append(seconds)
        peaks.append(peak)
    return statistics.median(times), max(peaks)


def recall(corpus: Corpus, queries: int = 200, from_vectors: bool = False) -> tuple[float, float, float]:
    """(dense recall@10, hybrid recall@10, warm API search ms) of the index's own search
    against exact search over every vector. Queries: titles of random documents, embedded; or
    (`from_vectors`) the stored vectors of those documents, with their titles as query text."""
    from paperscope.embedding import load_encoder
    from paperscope.search import best_passage_scores, fuse, rank

    index = corpus.store.open()
    rng = np.random.default_rng(11)
    positions = rng.choice(index.count, size=min(queries, index.count), replace=False)
    positions = np.sort(positions)
    titles = [doc.title for doc in index.documents(positions)]
    encoder = load_encoder(DEFAULT_MODEL)
    if from_vectors:
        vectors = np.asarray(index.vectors[np.asarray(index.bounds)[positions]], dtype=np.float32)
    else:
        vectors = encoder.encode(titles)
    dense_overlap, hybrid_overlap = [], []
    for title, vector in zip(titles, vectors, strict=True):
        exact = best_passage_scores(index, vector)
        truth = set(np.argsort(-exact, kind="stable")[:10])
        found = {p for p, _ in rank(index, query_text=title, query_vector=vector, mode="dense", k=10)}
        dense_overlap.append(len(truth & found) / 10)
        lexical = index.lexical.scores(title)
        fused = fuse(exact, lexical, np.ones(index.count, dtype=bool))
        truth = set(np.argsort(-fused, kind="stable")[:10])
        found = {p for p, _ in rank(index, query_text=title, query_vector=vector, mode="hybrid", k=10)}
        hybrid_overlap.append(len(truth & found) / 10)
    collection = corpus.collection
    latencies = []
    for query in (QUERIES * 10)[:50]:
        begun = time.perf_counter()
        collection.search(query, k=10)
        latencies.append((time.perf_counter() - begun) * 1000)
    return float(np.mean(dense_overlap)), float(np.mean(hybrid_overlap)), statistics.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 3_000_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=200, help="recall queries per size")
    parser.add_argument("--queries-from", choices=("titles", "vectors"), default="titles",
                        help="recall queries: embedded titles, or the documents' own stored vectors "
                             "(synthetic vectors have neighbours only among copies of a text)")
    parser.add_argument("--chunks", type=Path, help="chunk files of the 108k snapshot (real vectors)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/paperscope-scale"))
    parser.add_argument("--searches-only", action="store_true",
                        help="time searches of corpora an earlier run built in --work")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ENV["PAPERSCOPE_CACHE"] = str(args.work / "cache")
    os.environ["PAPERSCOPE_CACHE"] = ENV["PAPERSCOPE_CACHE"]
    print(f"machine: {os.cpu_count()} cores; {os.uname().machine}; paperscope at {ROOT}", flush=True)
    records = real_records()
    known = real_vectors(args.chunks)
    print(f"{len(records):,} real records; {len(known):,} real vectors", flush=True)
    rows = []
    catalogue = cold_search(args.runs, global_options=("--library", str(ROOT)))
    print(f"catalogue (40 entries): cold search {catalogue[0]:.3f} s, peak {catalogue[1] / 1024:.0f} MB",
          flush=True)
    for size in args.sizes:
        name = f"scale-{size}"
        corpus = Corpus(name)
        imported = built = build_peak = import_peak = float("nan")
        if not args.searches_only:
            snapshot = args.work / f"{name}.jsonl"
            write_snapshot(snapshot, records, size)
            imported, import_peak, _ = timed(["paperscope", "corpus", "import", str(snapshot), "--name",
                                              name, "--no-build"])
            snapshot.unlink()
            drop_in_chunks(corpus, known, min(size, len(records)))
            built, build_peak, _ = timed(["paperscope", "corpus", "build", name, "--passages", "whole"])
            print(f"{size:,}: import {imported:.0f} s ({CPU_SECONDS['paperscope corpus import']:.0f} s CPU, "
                  f"peak {import_peak / 1024:.0f} MB), build {built:.0f} s "
                  f"({CPU_SECONDS['paperscope corpus build']:.0f} s CPU, peak {build_peak / 1024:.0f} MB)",
                  flush=True)
        manifest = corpus.store.read_manifest()
        size_mb = corpus.store.size_bytes() / 2**20
        by_file = {name: round(info.bytes / 2**20) for name, info in manifest.files.items()}
        cold, peak = cold_search(args.runs, options=("--corpus", name))
        dense, hybrid, warm = recall(corpus, args.queries, args.queries_from == "vectors")
        row = {"documents": size, "search": manifest.search, "index_mb": round(size_mb),
               "index_mb_by_file": by_file,
               "import_s": imported, "import_peak_mb": round(import_peak / 1024)
               if import_peak == import_peak else None,
               "build_s": built, "build_cpu_s": CPU_SECONDS.get("paperscope corpus build"),
               "build_peak_mb": round(build_peak / 1024) if build_peak == build_peak else None,
               "cold_search_s": cold, "warm_search_ms": round(warm, 1), "search_peak_mb": round(peak / 1024),
               "recall10_dense": round(dense, 3), "recall10_hybrid": round(hybrid, 3),
               "ratio_to_catalogue": round(cold / catalogue[0], 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print("| documents | search | index on disk | import | build (no embedding) | cold CLI search "
          "(x catalogue) | warm API search | search peak memory | recall@10 dense / hybrid |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| 40 (catalogue) | exact | 0.7 MB | | | {catalogue[0]:.2f} s | | {catalogue[1] / 1024:.0f} MB | |")
    for r in rows:
        print(f"| {r['documents']:,} | {r['search']} | {r['index_mb']:,} MB | {r['import_s']:.0f} s | "
              f"{r['build_s']:.0f} s (peak {r['build_peak_mb']} MB) | {r['cold_search_s']:.2f} s "
              f"(x{r['ratio_to_catalogue']}) | {r['warm_search_ms']} ms | {r['search_peak_mb']} MB | "
              f"{r['recall10_dense']} / {r['recall10_hybrid']} |")


if __name__ == "__main__":
    main()
