"""Build-embedding throughput on a CUDA machine, and where the time goes (issue 4.5).

usage: python benchmarks/gpu_throughput.py [--corpus DIR] [--model DIR] [--reference FILE]

Embeds every passage of a BEIR corpus (default ../shared/data/scifact) three ways: the
model's raw `encode` at several batch sizes in fp32 and fp16, and the build's own path
(`SentenceTransformerEncoder`). Then it splits one pass into tokenising (CPU), the forward
pass on the GPU, and the rest. `--reference` is an .npy of fp32 CPU vectors of the first
passages, to show how far the GPU's vectors are from the ones a CPU build stores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from paperscope.beir import read_corpus  # noqa: E402
from paperscope.embedding import DEFAULT_MODEL, SentenceTransformerEncoder  # noqa: E402
from paperscope.text import passages  # noqa: E402


def rate(run, count: int, repeats: int) -> float:
    import torch

    speeds = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        started = time.perf_counter()
        run()
        torch.cuda.synchronize()
        speeds.append(count / (time.perf_counter() - started))
    return statistics.median(speeds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("No CUDA device: this benchmark measures the GPU build path.")
    documents = read_corpus(args.corpus)
    texts = [p for doc in documents for p in passages(doc)]
    encoder = SentenceTransformerEncoder(args.model)
    model = encoder._model
    model.float()  # the stored weights may be half precision; a build runs what it loads
    print(f"{torch.cuda.get_device_name()}; {len(documents)} documents, {len(texts)} passages; "
          f"build device {encoder.device}")
    model.encode(texts[:2048], batch_size=256)  # warm-up: CUDA context, kernels, tokenizer

    ours = rate(lambda: encoder.encode(texts), len(texts), args.repeats)
    print(f"build path (batch {encoder.batch_size}, fp32): {ours:8.0f} passages/s "
          f"= {ours * len(documents) / len(texts):6.0f} abstracts/s")
    for dtype in (torch.float32, torch.float16):
        model.to(dtype)
        for batch in (64, 256, 1024):
            speed = rate(lambda batch=batch: model.encode(texts, batch_size=batch, normalize_embeddings=True,
                                              show_progress_bar=False), len(texts), args.repeats)
            print(f"raw encode batch {batch:4d} {str(dtype)[6:]}: {speed:8.0f} passages/s "
                  f"= {speed * len(documents) / len(texts):6.0f} abstracts/s")

    # Where one fp32 pass at batch 256 spends its time.
    model.float()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    batches = [[texts[i] for i in order[s:s + 256]] for s in range(0, len(order), 256)]
    started = time.perf_counter()
    tokenize = getattr(model, "preprocess", None) or model.tokenize
    features = [tokenize(batch) for batch in batches]
    tokenise = time.perf_counter() - started
    started = time.perf_counter()
    on_gpu = [{k: v.to("cuda", non_blocking=True) for k, v in f.items() if isinstance(v, torch.Tensor)}
              for f in features]
    torch.cuda.synchronize()
    copy = time.perf_counter() - started
    with torch.inference_mode():
        for dtype in (torch.float32, torch.float16):
            model.to(dtype)
            model(on_gpu[0])
            torch.cuda.synchronize()
            started = time.perf_counter()
            for f in on_gpu:
                model(dict(f))
            torch.cuda.synchronize()
            print(f"forward only {str(dtype)[6:]}: {time.perf_counter() - started:.3f} s")
    model.float()
    whole = len(texts) / rate(lambda: model.encode(texts, batch_size=256, show_progress_bar=False),
                              len(texts), repeats=1)
    print(f"one fp32 pass at batch 256: {whole:.3f} s = tokenising {tokenise:.3f} s (CPU) + "
          f"copy to GPU {copy:.3f} s + forward and the rest")
    tokens = sum(int(f["attention_mask"].sum()) for f in features)
    padded = sum(int(f["attention_mask"].numel()) for f in features)
    print(f"tokens {tokens}, padded {padded} ({tokens / padded:.0%} useful)")

    if args.reference:
        reference = np.load(args.reference)
        for dtype in (torch.float32, torch.float16):
            model.to(dtype)
            got = model.encode(texts[:len(reference)], batch_size=256, normalize_embeddings=True,
                               convert_to_numpy=True).astype(np.float32)
            cosine = np.sum(got * reference, axis=1)
            print(f"vs CPU vectors, {str(dtype)[6:]}: max abs diff {np.abs(got - reference).max():.2e}, "
                  f"min cosine {cosine.min():.6f}")


if __name__ == "__main__":
    main()
