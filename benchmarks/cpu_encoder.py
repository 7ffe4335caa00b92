"""CPU embedding speed and fidelity of the ONNX encoder against the sentence-transformers path
(issue 19), on the same texts in one run.

usage: python benchmarks/cpu_encoder.py [--limit 2000] [--passages whole|multi-scale]
           [--variants fp32,int8,int8@128] [--rounds 4] [--batch-size 32]

Texts: the first --limit SciFact abstracts (../shared/data/scifact), embedded as the build
embeds them (`--passages whole`: title and abstract as one text; multi-scale: every passage of
those abstracts). Each encoder embeds the texts in --rounds interleaved slices (encoder A slice
1, B slice 1, ..., A slice 2, ...), so that the load of a shared machine falls on all alike.
Prints texts/s of each, its ratio to sentence-transformers' (the build's `encode`, length-
sorted batches of 64, torch threads = settings.build_threads()), and the median and minimum
cosine of its vectors to sentence-transformers' fp32 ones. A variant `int8@128` truncates at
128 word pieces instead of the model's 256.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "data" / "scifact"
sys.path.insert(0, str(ROOT / "src"))


def texts_of(limit: int, scheme: str) -> list[str]:
    from paperscope.beir import read_corpus
    from paperscope.text import SCHEMES, passages

    documents = read_corpus(DATASET)[:limit]
    return [text for document in documents for text in passages(document, SCHEMES[scheme])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=2000, help="SciFact abstracts (default 2000)")
    parser.add_argument("--passages", default="whole", choices=["whole", "multi-scale"])
    parser.add_argument("--variants", default="fp32,int8",
                        help="ONNX variants, comma-separated: fp32, int8, each optionally @N word pieces")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32, help="the ONNX encoder's batch size")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder for the ONNX graphs (default: a fresh temporary one, so the "
                             "time to make them is shown)")
    args = parser.parse_args()

    from paperscope.embedding import DEFAULT_MODEL, SentenceTransformerEncoder
    from paperscope.onnx_encoder import OnnxEncoder
    from paperscope.settings import build_threads

    texts = texts_of(args.limit, args.passages)
    print(f"{len(texts):,} texts ({args.passages}, {args.limit:,} SciFact abstracts), "
          f"{build_threads()} threads, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f} at the start")
    cache = args.cache or Path(tempfile.mkdtemp(prefix="paperscope-onnx-bench-"))

    encoders: dict[str, object] = {}
    started = time.perf_counter()
    encoders["sentence-transformers"] = SentenceTransformerEncoder(DEFAULT_MODEL)
    print(f"load sentence-transformers: {time.perf_counter() - started:.1f} s")
    for spec in args.variants.split(","):
        variant, _, length = spec.partition("@")
        started = time.perf_counter()
        encoder = OnnxEncoder(DEFAULT_MODEL, variant=variant, batch_size=args.batch_size,
                              max_length=int(length) if length else None, cache=cache)
        print(f"load {encoder.kind}: {time.perf_counter() - started:.1f} s (graph made and cached)")
        started = time.perf_counter()
        encoder = OnnxEncoder(DEFAULT_MODEL, variant=variant, batch_size=args.batch_size,
                              max_length=int(length) if length else None, cache=cache)
        print(f"load {encoder.kind}: {time.perf_counter() - started:.1f} s (from the cache)")
        encoders[encoder.kind] = encoder

    vectors = {name: np.empty((len(texts), 384), dtype=np.float32) for name in encoders}
    seconds = dict.fromkeys(encoders, 0.0)
    bounds = np.linspace(0, len(texts), args.rounds + 1).astype(int)
    for first, last in itertools.pairwise(bounds):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            vectors[name][first:last] = encoder.encode(texts[first:last])  # type: ignore[attr-defined]
            seconds[name] += time.perf_counter() - started

    reference = "sentence-transformers"
    print(f"\n{'encoder':<22} {'texts/s':>8} {'ratio':>6} {'median cos':>11} {'min cos':>9}")
    for name in encoders:
        cosine = (vectors[name] * vectors[reference]).sum(axis=1)
        print(f"{name:<22} {len(texts) / seconds[name]:>8.1f} {seconds[reference] / seconds[name]:>6.2f} "
              f"{np.median(cosine):>11.6f} {cosine.min():>9.6f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end (a shared machine: ratios, not rates)")


if __name__ == "__main__":
    main()
