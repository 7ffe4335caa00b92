"""SciFact retrieval figures for paperscope (issue 3): build time, index size, and
nDCG@10 / Recall@100 / MRR@10 / latency of each mode, through `paperscope eval`.

usage: python benchmarks/scifact.py [--split train] [--index-dir DIR] [--full]

Reads ../shared/data/scifact (BEIR layout). Tune on train only: the test split is held
back and measured separately.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "data" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", default="train")
    parser.add_argument("--index-dir", type=Path, default=Path.home() / ".cache" / "paperscope" / "scifact")
    parser.add_argument("--full", action="store_true", help="rebuild the index from scratch")
    args = parser.parse_args()
    paperscope = [sys.executable, "-m", "paperscope"]
    build = [*paperscope, "build", "--corpus", str(DATASET), "--index-dir", str(args.index_dir),
             "--passages", "multi-scale"]  # the figures are multi-scale ones, whatever the machine
    started = time.perf_counter()
    subprocess.run(build + (["--full"] if args.full else []), check=True)
    build_seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in args.index_dir.iterdir() if p.is_file())
    out = subprocess.run([*paperscope, "eval", str(DATASET), "--split", args.split, "--index-dir",
                          str(args.index_dir), "--json"],
                         check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    print(f"SciFact {args.split}: {report['documents']} documents, {report['modes'][0]['queries']} queries, "
          f"{report['model']}")
    print(f"build: {build_seconds:.1f} s ({'full' if args.full else 'incremental'}), "
          f"index {size / 2**20:.1f} MiB")
    print(f"{'mode':<8} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} {'ms/query':>9} {'p95':>7}")
    for m in report["modes"]:
        print(f"{m['mode']:<8} {m['ndcg_at_10']:>8.4f} {m['recall_at_100']:>7.4f} {m['mrr_at_10']:>7.4f} "
              f"{m['latency_ms_median']:>9.1f} {m['latency_ms_p95']:>7.1f}")
    best_single = max(m["ndcg_at_10"] for m in report["modes"] if m["mode"] != "hybrid")
    print(f"hybrid / best single mode nDCG@10: {report['modes'][0]['ndcg_at_10'] / best_single:.3f}")


if __name__ == "__main__":
    main()
