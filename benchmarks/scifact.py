"""SciFact retrieval figures for paperscope (issue 3): build time, index size, and
nDCG@10 / Recall@100 / MRR@10 / latency of each mode, through `paperscope eval`.

usage: python benchmarks/scifact.py [--split train] [--index-dir DIR] [--full]
           [--passages whole|multi-scale] [--encoder sentence-transformers|onnx-fp32|onnx-int8]

--encoder chooses the encoder that embeds the corpus (issue 19): sentence-transformers builds
through `paperscope build`; an ONNX variant builds in this process through the library's
build_index with that encoder. Queries are always encoded as search encodes them.

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
    parser.add_argument("--passages", choices=["whole", "multi-scale"], default=None,
                        help="passage scheme (default: multi-scale, as the published figures)")
    parser.add_argument("--encoder", default="sentence-transformers",
                        choices=["sentence-transformers", "onnx-fp32", "onnx-int8"])
    args = parser.parse_args()
    paperscope = [sys.executable, "-m", "paperscope"]
    scheme = args.passages or "multi-scale"  # the published figures are multi-scale ones, whatever the machine
    started = time.perf_counter()
    if args.encoder == "sentence-transformers":
        build = [*paperscope, "build", "--corpus", str(DATASET), "--index-dir", str(args.index_dir)]
        subprocess.run(build + (["--full"] if args.full else []) + ["--passages", scheme], check=True)
    else:
        build_with_onnx(args.index_dir, args.encoder.removeprefix("onnx-"), scheme, args.full)
    build_seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in args.index_dir.iterdir() if p.is_file())
    out = subprocess.run([*paperscope, "eval", str(DATASET), "--split", args.split, "--index-dir",
                          str(args.index_dir), "--json"],
                         check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    manifest = json.loads((args.index_dir / "manifest.json").read_text())
    print(f"SciFact {args.split}: {report['documents']} documents, {report['modes'][0]['queries']} queries, "
          f"{report['model']}, {(manifest.get('passages_scheme') or {}).get('name')} passages, "
          f"built by {args.encoder}")
    print(f"build: {build_seconds:.1f} s ({'full' if args.full else 'incremental'}), "
          f"index {size / 2**20:.1f} MiB")
    print(f"{'mode':<8} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} {'ms/query':>9} {'p95':>7}")
    for m in report["modes"]:
        print(f"{m['mode']:<8} {m['ndcg_at_10']:>8.4f} {m['recall_at_100']:>7.4f} {m['mrr_at_10']:>7.4f} "
              f"{m['latency_ms_median']:>9.1f} {m['latency_ms_p95']:>7.1f}")
    best_single = max(m["ndcg_at_10"] for m in report["modes"] if m["mode"] != "hybrid")
    print(f"hybrid / best single mode nDCG@10: {report['modes'][0]['ndcg_at_10'] / best_single:.3f}")


def build_with_onnx(index_dir: Path, variant: str, scheme: str | None, full: bool) -> None:
    """The corpus's index built in this process with the ONNX encoder (the CLI does not choose
    encoders yet)."""
    sys.path.insert(0, str(ROOT / "src"))
    from paperscope.beir import corpus_file, read_corpus
    from paperscope.index import IndexStore
    from paperscope.indexer import build_index
    from paperscope.onnx_encoder import OnnxEncoder
    from paperscope.settings import configured_model

    source = corpus_file(DATASET)
    store = IndexStore(index_dir)
    model = configured_model()
    encoder = OnnxEncoder(model, variant=variant)
    with store.write_lock(wait=True, on_wait=lambda: None):
        report = build_index(store, read_corpus(source), model=model, full=full, encoder=encoder,
                             source=str(source), scheme=scheme)
    print(f"built by {encoder.kind}: {report}", file=sys.stderr)


if __name__ == "__main__":
    main()
