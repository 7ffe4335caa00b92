"""Load on `paperscope serve` while the index is rebuilt (issue 13).

usage: python benchmarks/serve_load.py [--requests 2000] [--clients 20] [--library DIR]

Copies the library (default: the repository's catalogue.yaml and index/) to a temporary folder,
starts `paperscope serve --port 0` there (127.0.0.1 only) and times how long until the first
page answers. Then CLIENTS threads, each on one keep-alive connection, send REQUESTS searches
in all (the questions below, round robin; each client pausing --think seconds between
searches, as people typing do, or flat out with --think 0) while `paperscope build --full` replaces
the index once. Checks: every answer is 200, and each (index generation, query) pair always
gets the same ranked ids (no answer mixes two indexes). Prints p50/p99 latency of the warm
searches (a first pass sends every query once, then the load starts), and of those answered
while the build ran. Bounded: it stops after --timeout seconds whatever happens.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--library", type=Path, default=ROOT)
    parser.add_argument("--think", type=float, default=0.25, metavar="SECONDS",
                        help="Each client's pause between searches, as a person typing (0: flat out).")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="paperscope-load-"))
    library = work / "library"
    library.mkdir()
    shutil.copy(args.library / "catalogue.yaml", library / "catalogue.yaml")
    shutil.copytree(args.library / "index", library / "index",
                    ignore=shutil.ignore_patterns(".lock", "*.tmp", "chunks"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "paperscope", "--library", str(library)]
    started = time.perf_counter()
    server = subprocess.Popen([*command, "serve", "--port", "0"], stderr=subprocess.PIPE,
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
        ready = time.perf_counter() - started
        print(f"first page: HTTP {first.status} {ready:.2f} s after start (target: within 1 s)")

        def ask(conn: http.client.HTTPConnection, query: str) -> tuple[int, float, dict]:
            path = "/api/v1/search?" + urllib.parse.urlencode({"q": query, "k": 10})
            t = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - t
            return response.status, elapsed, json.loads(body) if body else {}

        for query in QUERIES:  # warm: each question once (its vector is then cached)
            ask(connection, query)
        connection.close()

        results: list[tuple[float, float, int, str, int | None, tuple]] = []
        lock = threading.Lock()
        counter = iter(range(args.requests))
        deadline = time.monotonic() + args.timeout
        build: dict = {}

        def client(number: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while time.monotonic() < deadline:
                with lock:
                    n = next(counter, None)
                if n is None:
                    break
                query = QUERIES[(n + number) % len(QUERIES)]
                at = time.perf_counter()
                try:
                    status, elapsed, body = ask(conn, query)
                except (OSError, http.client.HTTPException, ValueError):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    status, elapsed, body = -1, time.perf_counter() - at, {}
                generation = (body.get("index") or {}).get("generation")
                ids = tuple(hit["id"] for hit in body.get("hits", []))
                with lock:
                    results.append((at, elapsed, status, query, generation, ids))
                if args.think:
                    time.sleep(args.think)
            conn.close()

        def rebuild() -> None:
            time.sleep(0.5)  # let the load get going
            build["start"] = time.perf_counter()
            done = subprocess.run([*command, "build", "--full"], env=env, capture_output=True, text=True,
                                  timeout=args.timeout)
            build["end"] = time.perf_counter()
            build["rc"] = done.returncode
            build["stderr"] = done.stderr.strip().splitlines()[-1:] if done.stderr else []

        load_start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        builder = threading.Thread(target=rebuild)
        builder.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        load_time = time.perf_counter() - load_start
        builder.join(timeout=max(1.0, deadline - time.monotonic()))
        # After the load: one more answer, which must come from the rebuilt index.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        _, _, after = ask(conn, QUERIES[0])
        conn.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    errors = [r for r in results if r[2] != 200]
    answers: dict[tuple, set] = {}
    for _, _, status, query, generation, ids in results:
        if status == 200:
            answers.setdefault((generation, query), set()).add(ids)
    mixed = {key: ids for key, ids in answers.items() if len(ids) > 1}
    generations = sorted({r[4] for r in results if r[4] is not None})
    latencies = [r[1] * 1000 for r in results if r[2] == 200]
    during = [r[1] * 1000 for r in results if r[2] == 200 and build.get("start", 1e18) <= r[0] <= build.get("end", 0)]
    print(f"{len(results)} searches from {args.clients} concurrent clients in {load_time:.2f} s "
          f"({len(results) / load_time:.0f}/s); errors: {len(errors)}; mixed answers: {len(mixed)}")
    print(f"build --full: exit {build.get('rc')} in {build.get('end', 0) - build.get('start', 0):.2f} s "
          f"{build.get('stderr')}; generations served: {generations}; after the load: generation "
          f"{(after.get('index') or {}).get('generation')}")
    if latencies:
        print(f"latency, all warm searches: p50 {statistics.median(latencies):.1f} ms, "
              f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms "
              "(targets: p50 <= 15 ms, p99 <= 60 ms)")
    if during:
        print(f"latency while the build ran ({len(during)} searches): p50 {statistics.median(during):.1f} ms, "
              f"p99 {percentile(during, 0.99):.1f} ms")
    ok = not errors and not mixed and build.get("rc") == 0 and len(results) == args.requests
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
