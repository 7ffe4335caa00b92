"""Speed figures for paperscope (issue 4), printed with medians, spreads and ratios.

usage: python benchmarks/speed.py [--repeats N]

Run from the repository root in the project's virtual environment. Figures:
  1. cold `paperscope search` in a new process vs the straightforward reference script
  2. equality: light-encoder query vectors vs sentence-transformers', and the top-10 of
     every catalogue question through both
  3. instant commands: --help, list, show, status
  4. incremental rebuild after a one-entry edit vs a full rebuild
  5. build throughput: the build's embedding path vs the model's raw encode
  6. under load: `paperscope search` while a busy loop keeps every core busy, with the CLI's
     single-threaded default and with one BLAS thread per core, side by side (`--load` runs
     only this one)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERY = "parameter-efficient finetuning"


def timed(command: list[str], repeats: int, cwd: Path = ROOT, env: dict | None = None) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=env)
        times.append(time.perf_counter() - started)
    return times


def describe(times: list[float]) -> str:
    spread = (max(times) - min(times)) / 2
    return (f"median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}, "
            f"±{spread:.3f}, n={len(times)})")


def report_rebuild(what, full, edits, load_st, load_light) -> None:
    beyond_full = statistics.median(full) - statistics.median(load_st)
    beyond_edit = statistics.median(edits) - statistics.median(load_light)
    print(f"   {what}:")
    print(f"     full rebuild (--full) : {describe(full)}")
    print(f"     one-entry rebuild     : {describe(edits)}")
    print(f"     beyond model loading  : full {beyond_full:.3f} s, one entry {beyond_edit:.3f} s, "
          f"ratio {beyond_edit / beyond_full:.3f} (goal <= 0.10)")


def corpus_rebuilds(scifact: Path, paperscope: list[str], size: int) -> tuple[list[float], list[float]]:
    """Full and one-document rebuild times of a corpus index of the first `size` abstracts."""
    import gzip

    with gzip.open(scifact / "corpus.jsonl.gz", "rt") as handle:
        lines = [next(handle) for _ in range(size)]
    with tempfile.TemporaryDirectory() as folder:
        corpus, index = Path(folder) / "corpus.jsonl", Path(folder) / "index"
        corpus.write_text("".join(lines))
        build = [*paperscope, "build", "--corpus", str(corpus), "--index-dir", str(index)]
        full = timed([*build, "--full"], 1)
        edits = []
        for n in range(3):
            record = json.loads(lines[0])
            record["text"] = f"(edit {n}) " + record["text"]
            corpus.write_text(json.dumps(record) + "\n" + "".join(lines[1:]))
            edits.extend(timed(build, 1))
    return full, edits


def under_load(paperscope: list[str], repeats: int) -> None:
    """Search times while one busy loop per core runs: the default (one BLAS thread, set by
    the CLI) against one BLAS thread per core, alternating so that both see the same load."""
    cores = os.cpu_count() or 1
    plain = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS")}
    threaded = {**plain, **{k: str(cores) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                    "MKL_NUM_THREADS")}}
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        single, many = [], []
        for _ in range(repeats):
            single += timed([*paperscope, "search", QUERY, "--json"], 1, env=plain)
            many += timed([*paperscope, "search", QUERY, "--json"], 1, env=threaded)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"\n6. search with {cores} busy loops running ({cores} CPUs)")
    print(f"   {'one BLAS thread (default)':<28}: {describe(single)}")
    print(f"   {f'{cores} BLAS threads':<28}: {describe(many)}")
    print(f"   {'ratio':<28}: {statistics.median(many) / statistics.median(single):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--load", action="store_true", help="Only measure search under load.")
    arguments = parser.parse_args()
    repeats = arguments.repeats
    paperscope = [sys.executable, "-m", "paperscope"]
    if arguments.load:
        under_load(paperscope, repeats)
        return
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    timed([*paperscope, "search", QUERY], 1)  # warm the OS cache

    # 1. cold search
    ours = timed([*paperscope, "search", QUERY, "--json"], repeats)
    reference = timed([sys.executable, "benchmarks/reference_search.py", "index", QUERY], repeats)
    print(f"\n1. cold search, new process each time ({QUERY!r})")
    print(f"   paperscope search : {describe(ours)}")
    print(f"   reference script  : {describe(reference)}")
    print(f"   ratio             : {statistics.median(ours) / statistics.median(reference):.3f} "
          f"(goal <= 0.15; absolute goal <= 0.5 s)")

    # 2. equality
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from paperscope import Library
    from paperscope.beir import read_queries
    from paperscope.embedding import DEFAULT_MODEL, load_encoder
    from paperscope.search import Searcher

    queries = list(read_queries(ROOT / "evaluation" / "catalogue").values())
    light, st = load_encoder(DEFAULT_MODEL), load_encoder(DEFAULT_MODEL, kinds=("sentence-transformers",))
    a, b = light.encode(queries), st.encode(queries)
    index, _ = Library.open(ROOT).index(update=False)
    searcher = Searcher(index)
    same = sum(
        [p for p, _ in searcher.rank(q, k=10, query_vector=va)]
        == [p for p, _ in searcher.rank(q, k=10, query_vector=vb)]
        for q, va, vb in zip(queries, a, b, strict=True))
    print(f"\n2. light encoder vs sentence-transformers on {len(queries)} catalogue questions")
    print(f"   max |difference| of query vectors: {np.abs(a - b).max():.2e} (goal <= 1e-4)")
    print(f"   identical hybrid top-10: {same}/{len(queries)}")

    # 3. instant commands
    print("\n3. everyday commands (goal: median < 0.3 s)")
    for args in (["--help"], ["list"], ["show", "lora"], ["status"]):
        print(f"   paperscope {' '.join(args):<10}: {describe(timed(paperscope + args, repeats))}")

    # 4. incremental rebuild
    with tempfile.TemporaryDirectory() as folder:
        library = Path(folder)
        shutil.copy(ROOT / "catalogue.yaml", library)
        shutil.copytree(ROOT / "index", library / "index", ignore=shutil.ignore_patterns(".lock"))
        build = [*paperscope, "--library", str(library), "build"]
        full = timed([*build, "--full"], 3)
        edits = []
        catalogue = library / "catalogue.yaml"
        original = catalogue.read_text()
        for n in range(3):
            catalogue.write_text(original.replace("A PyTorch library offering",
                                                  f"A PyTorch library (edit {n}) offering", 1))
            edits.extend(timed(build, 1))
        load_st = timed([sys.executable, "-c", ("from paperscope.embedding import *; "
                                                "load_encoder(DEFAULT_MODEL, kinds=('sentence-transformers',))")], 3)
        load_light = timed([sys.executable, "-c", ("from paperscope.embedding import *; "
                                                   "load_encoder(DEFAULT_MODEL)")], 3)
    print("\n4. rebuild after editing one entry")
    print(f"   process + model load alone : sentence-transformers {statistics.median(load_st):.3f} s, "
          f"light {statistics.median(load_light):.3f} s")
    report_rebuild("the catalogue (40 entries)", full, edits, load_st, load_light)
    scifact = ROOT.parent / "shared" / "data" / "scifact"
    if scifact.exists():
        full, edits = corpus_rebuilds(scifact, paperscope, size=1000)
        report_rebuild("1,000 SciFact abstracts", full, edits, load_st, load_light)

    # 5. build throughput
    from paperscope.beir import read_corpus
    from paperscope.text import passages

    scifact = ROOT.parent / "shared" / "data" / "scifact"
    documents = read_corpus(scifact)[:300] if scifact.exists() else index.documents
    texts = [p for doc in documents for p in passages(doc)]
    model = st._model
    model.encode(texts[:32], batch_size=64)
    raw, ours_build = [], []
    for _ in range(3):
        started = time.perf_counter()
        model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        raw.append(len(texts) / (time.perf_counter() - started))
        started = time.perf_counter()
        st.encode(texts)
        ours_build.append(len(texts) / (time.perf_counter() - started))
    print(f"\n5. embedding throughput on {len(texts)} passages of {len(documents)} documents "
          f"(device {st.device})")
    print(f"   raw model.encode : {statistics.median(raw):.1f} texts/s")
    print(f"   build path       : {statistics.median(ours_build):.1f} texts/s, ratio "
          f"{statistics.median(ours_build) / statistics.median(raw):.3f} (goal >= 0.90)")

    under_load(paperscope, repeats)


if __name__ == "__main__":
    main()
