"""Embedding a large corpus on a GPU into drop-in chunk files (issue 11.5).

usage:
  python benchmarks/gpu_corpus.py prepare [--snapshot FILE] [--parts 3] [--out .gpu]
      (here) the 108k snapshot's records exactly as `paperscope corpus import` keeps them, as
      (content hash, text) pairs in parts small enough to travel; SciFact's corpus likewise;
      and the packaged model with float16 weights.
  python benchmarks/gpu_corpus.py embed --texts .gpu/part1.jsonl.xz --start 0 --out DIR
      (on the GPU machine) embed them with the build's own CUDA path (length-sorted batches,
      tokenised ahead by CPU threads, float16 where it stays within 1e-3 of float32) and write
      chunk files that `paperscope corpus build` picks up; prints abstracts per second.
Copy the chunk files into ~/.cache/paperscope/corpora/NAME/index/chunks/ and run
`paperscope corpus build NAME`: only what no chunk holds is embedded here.
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from paperscope import chunks  # noqa: E402
from paperscope.records import Document  # noqa: E402
from paperscope.settings import DEFAULT_MODEL  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def prepare(args: argparse.Namespace) -> None:
    import gzip

    from paperscope.beir import read_corpus
    from paperscope.corpora import ImportReport, parse_snapshot_line, record_document

    args.out.mkdir(parents=True, exist_ok=True)
    documents, report = [], ImportReport()
    with gzip.open(args.snapshot, "rb") as handle:
        for line in handle:
            parsed = parse_snapshot_line(line, report)
            if parsed is not None:
                documents.append(record_document(*parsed))
    size = -(-len(documents) // args.parts)
    for part in range(args.parts):
        _write_texts(args.out / f"part{part + 1}.jsonl.xz", documents[part * size:(part + 1) * size])
        print(f"part{part + 1}: documents {part * size} to {min(len(documents), (part + 1) * size)}")
    _write_texts(args.out / "scifact.jsonl.xz", read_corpus(SHARED / "scifact"))
    from sentence_transformers import SentenceTransformer

    from paperscope.embedding import resolve_model_dir

    model = SentenceTransformer(str(resolve_model_dir(DEFAULT_MODEL)), device="cpu")
    model.half().save(str(args.out / "model"))
    print(f"model saved in float16 to {args.out / 'model'}")


def _write_texts(path: Path, documents: list[Document]) -> None:
    with lzma.open(path, "wt", encoding="utf-8") as out:
        for doc in documents:
            out.write(json.dumps([doc.content_hash, doc.embedding_text], ensure_ascii=False) + "\n")


def embed(args: argparse.Namespace) -> None:
    import torch

    from paperscope.embedding import SentenceTransformerEncoder

    with lzma.open(args.texts, "rt", encoding="utf-8") as handle:
        pairs = [json.loads(line) for line in handle]
    hashes, texts = [p[0] for p in pairs], [p[1] for p in pairs]
    started = time.perf_counter()
    encoder = SentenceTransformerEncoder(str(args.model_dir))
    loaded = time.perf_counter() - started
    print(f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}; "
          f"{len(texts)} texts; model loaded in {loaded:.1f} s on {encoder.device}, "
          f"{encoder.precision}; batch {encoder.batch_size}")
    encoder.encode(texts[:512])  # warm-up: kernels, allocator
    sample = texts[:2000]
    half = encoder.encode(sample)
    model = encoder._model
    precision = encoder.precision
    if precision == "float16":
        model.float()
        encoder.precision = "float32"
        full = encoder.encode(sample)
        model.half()
        encoder.precision = precision
        print(f"float16 against float32 on {len(sample)} abstracts: max |difference| "
              f"{np.abs(full - half).max():.2e}, min cosine {(full * half).sum(1).min():.6f}")
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for offset in range(0, len(texts), args.chunk):
        rows = slice(offset, offset + args.chunk)
        sync()
        begun = time.perf_counter()
        vectors = encoder.encode(texts[rows])
        sync()
        seconds = time.perf_counter() - begun
        total += seconds
        path = chunks.write_chunk(args.out, model=args.model_name, scheme="whole", source=args.source,
                                  start=args.start + offset, hashes=hashes[rows],
                                  counts=[1] * len(vectors), vectors=vectors.astype(np.float16),
                                  dtype="float16")
        print(f"{path.name}: {len(vectors)} abstracts in {seconds:.1f} s "
              f"({len(vectors) / seconds:,.0f}/s)")
    _where_the_time_goes(encoder, texts, sync)
    print(f"TOTAL {len(texts)} abstracts in {total:.1f} s: {len(texts) / total:,.0f} abstracts/s "
          f"({precision}, whole-abstract scheme, max 256 tokens)")


def _where_the_time_goes(encoder, texts: list[str], sync) -> None:
    """Tokenising alone (the build's thread pool) and the forward pass alone, on the same batches."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    model = encoder._model
    prepare = getattr(model, "preprocess", None) or model.tokenize
    ordered = sorted(texts, key=len, reverse=True)
    batches = [ordered[i:i + encoder.batch_size] for i in range(0, len(ordered), encoder.batch_size)]
    for name, tokenize in (("sentence-transformers' tokenize", prepare),
                           ("the build's Rust encode_batch", encoder._batch_tokenizer())):
        for threads in (1, 8):
            begun = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                features = list(pool.map(tokenize, batches))
            print(f"tokenising alone with {name}, {threads} thread(s): "
                  f"{len(texts) / (time.perf_counter() - begun):,.0f}/s")
    features = [{k: v.to(model.device) for k, v in f.items() if isinstance(v, torch.Tensor)} for f in features]
    sync()
    begun = time.perf_counter()
    with torch.inference_mode():
        for batch in features:
            model(batch)
    sync()
    print(f"forward pass alone ({encoder.precision}): {len(texts) / (time.perf_counter() - begun):,.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare")
    prep.add_argument("--snapshot", type=Path, default=SHARED / "arxiv-snapshot-108k.jsonl.gz")
    prep.add_argument("--parts", type=int, default=3)
    prep.add_argument("--out", type=Path, default=ROOT / ".gpu")
    run = commands.add_parser("embed")
    run.add_argument("--texts", type=Path, required=True)
    run.add_argument("--start", type=int, default=0)
    run.add_argument("--model-dir", type=Path, default=ROOT / ".gpu" / "model")
    run.add_argument("--model-name", default=DEFAULT_MODEL)
    run.add_argument("--source", default="corpus:arxiv-108k")
    run.add_argument("--chunk", type=int, default=18200)
    run.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    prepare(args) if args.command == "prepare" else embed(args)


if __name__ == "__main__":
    main()
