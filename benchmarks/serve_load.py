"""Serving under load with distinct queries, on the catalogue and on a corpus (issues 13, 20).

usage: python benchmarks/serve_load.py [--requests 1000] [--clients 20] [--library DIR]
                                       [--corpus NAME | --corpus-size N] [--workers N] [--rebuild]

Copies the library (default: the repository's catalogue.yaml and index/) to a temporary folder,
starts `paperscope serve --port 0 --workers N` there (127.0.0.1 only) and times how long until
the first page answers. Queries are distinct (no cache helps): titles of
../shared/data/arxiv-snapshot-108k.jsonl.gz, cut to their first eight words, shuffled, each
sent once in the whole run. For the catalogue, then for the corpus (`corpus=NAME` on the JSON
API), two modes of REQUESTS searches each: CLIENTS threads each on one keep-alive connection
pausing --think seconds between searches, as people typing do (p50/p99 latency), then flat out
(searches per second). Targets (issue 20): p50 <= 30 ms, p99 <= 150 ms; at least 180/s (3x
the 60/s before); the first page within 1 s.

The corpus: `--corpus NAME`, one already in PAPERSCOPE_CACHE; else one of the snapshot's first
--corpus-size records (0: none), imported into a temporary cache with synthetic vectors
dropped in as chunk files (benchmarks/scale.py's), so `corpus build` embeds nothing; queries
are still embedded by the real model, which is what is timed.

--rebuild adds the check of issue 13: while `paperscope build --full` replaces the catalogue's
index, the 20 fixed questions below, round robin: every answer is 200 and each (index
generation, query) pair always gets the same ranked ids (no answer mixes two indexes).
Bounded: each phase stops after --timeout seconds whatever happens.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT.parent / "shared" / "data" / "arxiv-snapshot-108k.jsonl.gz"
QUERIES = ["parameter-efficient finetuning", "reinforcement learning from human feedback",
           "speculative decoding", "quantization of large language models", "scaling laws",
           "mixture of experts", "code generation benchmark", "instruction tuning data",
           "attention is all you need", "flash attention", "distributed training", "lora",
           "direct preference optimization", "evaluation of chatbots", "rotary position embedding",
           "kv cache memory", "sparse attention for long context", "tokenizer", "rlhf reward model",
           "open source language model"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def distinct_queries() -> Iterator[str]:
    """The snapshot's titles, first eight words, each once, in a fixed random order."""
    seen: set[str] = set()
    with gzip.open(SNAPSHOT, "rt") as handle:
        for line in handle:
            title = " ".join(json.loads(line).get("title", "").split()[:8])
            if title and len(title) < 200:
                seen.add(title)
    titles = sorted(seen)
    random.Random(20).shuffle(titles)
    return iter(titles)


def make_corpus(name: str, size: int, env: dict[str, str], work: Path) -> None:
    """A corpus of the snapshot's first `size` records with synthetic vectors (see the docstring)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from scale import drop_in_chunks

    from paperscope.corpora import Corpus

    snapshot = work / "slice.jsonl"
    with gzip.open(SNAPSHOT, "rb") as source, snapshot.open("wb") as out:
        for n, line in enumerate(source):
            if n == size:
                break
            out.write(line)
    command = [sys.executable, "-m", "paperscope", "corpus"]
    started = time.perf_counter()
    subprocess.run([*command, "import", str(snapshot), "--name", name, "--no-build"], env=env,
                   check=True, capture_output=True)
    imported = time.perf_counter() - started
    os.environ["PAPERSCOPE_CACHE"] = env["PAPERSCOPE_CACHE"]
    drop_in_chunks(Corpus(name), {}, size)
    started = time.perf_counter()
    subprocess.run([*command, "build", name, "--passages", "whole"], env=env, check=True, capture_output=True)
    print(f"corpus {name}: {size:,} records of the snapshot, imported in {imported:.0f} s, built "
          f"(synthetic vectors, no embedding) in {time.perf_counter() - started:.0f} s", flush=True)


def ask(conn: http.client.HTTPConnection, query: str, corpus: str | None = None) -> tuple[int, float, dict]:
    params = {"q": query, "k": 10, **({"corpus": corpus} if corpus else {})}
    started = time.perf_counter()
    conn.request("GET", "/api/v1/search?" + urllib.parse.urlencode(params))
    response = conn.getresponse()
    body = response.read()
    return response.status, time.perf_counter() - started, json.loads(body) if body else {}


def load(port: int, queries: Iterator[str] | list[str], *, requests: int, clients: int, think: float,
         timeout: float, corpus: str | None = None, during=None) -> tuple[list[tuple], float]:
    """CLIENTS threads sending REQUESTS searches in all; `queries` a list (round robin, offset by
    client) or an iterator (each query once). Returns (at, seconds, status, query, generation,
    ids) per search and the wall time; `during`, if given, runs in a thread alongside."""
    results: list[tuple] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + timeout

    def client(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            with lock:
                n = next(counter, None)
                if n is None:
                    break
                query = queries[(n + number) % len(queries)] if isinstance(queries, list) else next(queries)
            at = time.perf_counter()
            try:
                status, elapsed, body = ask(conn, query, corpus)
            except (OSError, http.client.HTTPException, ValueError):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status, elapsed, body = -1, time.perf_counter() - at, {}
            generation = (body.get("index") or {}).get("generation")
            ids = tuple(hit["id"] for hit in body.get("hits", []))
            with lock:
                results.append((at, elapsed, status, query, generation, ids))
            if think:
                time.sleep(think)
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    helper = threading.Thread(target=during) if during else None
    for thread in ([helper] if helper else []) + threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if helper:
        helper.join(timeout=max(1.0, deadline - time.monotonic()))
    return results, wall


def latencies_ms(results: list[tuple]) -> list[float]:
    return [r[1] * 1000 for r in results if r[2] == 200]


def distinct_phases(port: int, queries: Iterator[str], args, corpus: str | None) -> bool:
    """The pausing clients, then back to back, on the catalogue or a corpus; True if all answered."""
    where = f"corpus {corpus}" if corpus else "catalogue"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    status, first, body = ask(conn, next(queries), corpus)  # opens the corpus, loads the model
    conn.close()
    print(f"{where}: first search HTTP {status} in {first * 1000:.0f} ms "
          f"({(body.get('index') or {}).get('count')} documents)", flush=True)
    ok = status == 200
    # Untimed: every worker opens the corpus and meets the query path once (a server's first
    # minute, not its steady state; the first search above is that cost).
    load(port, queries, requests=5 * args.clients, clients=args.clients, think=0.0, timeout=args.timeout,
         corpus=corpus)
    for think in (args.think, 0.0):
        results, wall = load(port, queries, requests=args.requests, clients=args.clients, think=think,
                             timeout=args.timeout, corpus=corpus)
        times = latencies_ms(results)
        errors = len(results) - len(times)
        ok = ok and not errors and len(results) == args.requests
        mode = f"pausing {think:g} s" if think else "back to back"
        print(f"{where}, {args.clients} clients {mode}: {len(results)} distinct searches in {wall:.1f} s "
              f"({len(results) / wall:.0f}/s), errors {errors}; p50 {statistics.median(times):.1f} ms, "
              f"p99 {percentile(times, 0.99):.1f} ms, max {max(times):.1f} ms", flush=True)
    return ok


def rebuild_phase(port: int, command: list[str], env: dict[str, str], args) -> bool:
    """Issue 13's check: fixed questions while `build --full` replaces the catalogue's index."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for query in QUERIES:  # warm: each question once (its vector is then cached)
        ask(conn, query)
    build: dict = {}

    def rebuild() -> None:
        time.sleep(0.5)  # let the load get going
        build["start"] = time.perf_counter()
        done = subprocess.run([*command, "build", "--full"], env=env, capture_output=True, text=True,
                              timeout=args.timeout)
        build["end"] = time.perf_counter()
        build["rc"] = done.returncode
        build["stderr"] = done.stderr.strip().splitlines()[-1:] if done.stderr else []

    results, wall = load(port, QUERIES, requests=args.requests, clients=args.clients, think=args.think,
                         timeout=args.timeout, during=rebuild)
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # the first one idled out
    _, _, after = ask(conn, QUERIES[0])  # after the load: must come from the rebuilt index
    conn.close()
    errors = [r for r in results if r[2] != 200]
    answers: dict[tuple, set] = {}
    for _, _, status, query, generation, ids in results:
        if status == 200:
            answers.setdefault((generation, query), set()).add(ids)
    mixed = {key: ids for key, ids in answers.items() if len(ids) > 1}
    generations = sorted({r[4] for r in results if r[4] is not None})
    during = [r[1] * 1000 for r in results
              if r[2] == 200 and build.get("start", 1e18) <= r[0] <= build.get("end", 0)]
    print(f"rebuild: {len(results)} searches (20 fixed questions) in {wall:.2f} s; errors: {len(errors)}; "
          f"mixed answers: {len(mixed)}; build --full: exit {build.get('rc')} in "
          f"{build.get('end', 0) - build.get('start', 0):.2f} s {build.get('stderr')}; generations "
          f"served: {generations}; after the load: generation {(after.get('index') or {}).get('generation')}")
    if during:
        print(f"latency while the build ran ({len(during)} searches): p50 {statistics.median(during):.1f} ms, "
              f"p99 {percentile(during, 0.99):.1f} ms")
    return not errors and not mixed and build.get("rc") == 0 and len(results) == args.requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="Searches per phase.")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--library", type=Path, default=ROOT)
    parser.add_argument("--think", type=float, default=0.25, metavar="SECONDS",
                        help="Each pausing client's pause between searches, as a person typing.")
    parser.add_argument("--corpus", metavar="NAME", help="An existing corpus (in PAPERSCOPE_CACHE).")
    parser.add_argument("--corpus-size", type=int, default=5000, metavar="N",
                        help="Without --corpus: make one of the snapshot's first N records (0: none).")
    parser.add_argument("--workers", type=int, default=1, help="`serve --workers N`.")
    parser.add_argument("--rebuild", action="store_true",
                        help="Also check answers while `build --full` replaces the index (issue 13).")
    parser.add_argument("--timeout", type=float, default=300.0, help="Seconds per phase at most.")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="paperscope-load-"))
    library = work / "library"
    library.mkdir()
    shutil.copy(args.library / "catalogue.yaml", library / "catalogue.yaml")
    shutil.copytree(args.library / "index", library / "index",
                    ignore=shutil.ignore_patterns(".lock", "*.tmp", "chunks"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    corpus = args.corpus
    if not corpus and args.corpus_size:
        corpus, env["PAPERSCOPE_CACHE"] = "load", str(work / "cache")
        make_corpus(corpus, args.corpus_size, env, work)
    queries = distinct_queries()
    command = [sys.executable, "-m", "paperscope", "--library", str(library)]
    started = time.perf_counter()
    server = subprocess.Popen([*command, "serve", "--port", "0", "--workers", str(args.workers)],
                              stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        line = server.stderr.readline()
        match = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            print(f"the server did not start: {line}", file=sys.stderr)
            return 1
        port = int(match.group(1))
        threading.Thread(target=server.stderr.read, daemon=True).start()  # keep the pipe drained
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/")
        first = connection.getresponse()
        first.read()
        connection.close()
        print(f"first page: HTTP {first.status} {time.perf_counter() - started:.2f} s after start "
              "(target: within 1 s)", flush=True)
        if args.workers > 1:
            time.sleep(5)  # the other workers load (about a second each) before anything is timed
        ok = first.status == 200 and distinct_phases(port, queries, args, None)
        if corpus:
            ok = distinct_phases(port, queries, args, corpus) and ok
        if args.rebuild:
            ok = rebuild_phase(port, command, env, args) and ok
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
