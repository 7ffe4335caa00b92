"""Embedding on Ray against one process (issue 19), and the speed of each passage scheme.

usage:
  unshare -n sh -c 'ip link set lo up; python benchmarks/ray_embedding.py'   # as root
  python benchmarks/ray_embedding.py --isolate      # the same: re-runs itself that way
  python benchmarks/ray_embedding.py --only schemes # no Ray: each scheme's speed here

Texts: SciFact's abstracts (../shared/data/scifact), with the packaged model.

- schemes: one process, the encoder of large builds (sentence-transformers, on every core):
  papers a second embedded whole and in multi-scale passages, alternately, and their ratio.
- ray (CPU): the same abstracts embedded whole by a build in one process and by a build on a
  local Ray cluster of the same cores (one actor of all of them), alternately, twice; prints each
  build's time, abstracts a second and Ray's overhead in per cent (the cluster's start is
  printed apart: it is paid once per build, not per abstract).
- ray (CUDA, when torch sees a GPU): abstracts a second through Ray with one GPU actor against
  the build's direct CUDA path, on more abstracts.

Ray binds every interface whatever it is asked (2.60): run it where that is harmless, or in a
network namespace of its own as above, where it binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from paperscope.index import IndexStore  # noqa: E402
from paperscope.indexer import build_index  # noqa: E402
from paperscope.settings import DEFAULT_MODEL  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def abstracts(count: int):
    from paperscope.beir import read_corpus

    documents = list(read_corpus(SHARED / "scifact"))
    return [documents[i % len(documents)] for i in range(count)]


def timed_build(documents, scheme: str, **options) -> float:
    folder = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    try:
        started = time.perf_counter()
        report = build_index(IndexStore(folder), documents, model=DEFAULT_MODEL, scheme=scheme,
                             search="exact", **options)
        assert report.written and len(report.embedded) == len(documents)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def schemes(args: argparse.Namespace) -> None:
    """Papers a second whole and in multi-scale passages through the build's encoder (loaded
    once), alternately, so that a busy machine slows both alike; the ratio is what travels."""
    from paperscope.embedding import SentenceTransformerEncoder
    from paperscope.text import SCHEMES, passages

    encoder = SentenceTransformerEncoder(DEFAULT_MODEL)
    encoder.encode(["warm up"] * 8)
    texts = {scheme: [text for doc in abstracts(count) for text in passages(doc, SCHEMES[scheme])]
             for scheme, count in (("whole", args.whole), ("multi-scale", args.multi))}
    papers = {"whole": args.whole, "multi-scale": args.multi}
    rates: dict[str, list[float]] = {scheme: [] for scheme in texts}
    for _ in range(args.rounds):
        for scheme, batch in texts.items():
            started = time.perf_counter()
            encoder.encode(batch)
            rates[scheme].append(papers[scheme] / (time.perf_counter() - started))
    print(f"## One process, {os.cpu_count()} cores, {DEFAULT_MODEL}, median of {args.rounds} alternating rounds")
    for scheme, batch in texts.items():
        rate = statistics.median(rates[scheme])
        print(f"{scheme:12} {papers[scheme]:5} papers {len(batch):6} vectors: {rate:6.2f} papers/s, "
              f"{rate * len(batch) / papers[scheme]:6.1f} vectors/s  {[round(r, 2) for r in rates[scheme]]}")
    ratio = statistics.median(rates["whole"]) / statistics.median(rates["multi-scale"])
    print(f"multi-scale passages take {ratio:.1f} times as long as whole abstracts", flush=True)


def on_ray(args: argparse.Namespace) -> None:
    from paperscope.distributed import _connected, ray_embedder

    cores = os.cpu_count() or 1
    cuda = _cuda()
    count = args.gpu_count if cuda else args.count
    documents = abstracts(count)
    started = time.perf_counter()
    with _connected(None, cpus=cores, on_note=print) as (address, _):
        print(f"local Ray cluster at {address} started in {time.perf_counter() - started:.1f} s")
        if cuda:
            direct = timed_build(documents, "whole")
            through = timed_build(documents, "whole", embedder=ray_embedder(actors=1, on_note=print))
            print(f"CUDA: {count} abstracts whole: direct {count / direct:,.0f} abstracts/s "
                  f"({direct:.1f} s), Ray with one GPU actor {count / through:,.0f} abstracts/s "
                  f"({through:.1f} s)")
            return
        times: dict[str, list[float]] = {"one process": [], "Ray": []}
        for _ in range(args.rounds):
            times["one process"].append(timed_build(documents, "whole"))
            times["Ray"].append(timed_build(documents, "whole", embedder=ray_embedder(on_note=print)))
            print({key: [round(t, 1) for t in value] for key, value in times.items()}, flush=True)
    single, ray = (statistics.median(times[key]) for key in ("one process", "Ray"))
    ratios = [r / o for o, r in zip(times["one process"], times["Ray"], strict=True)]
    print(f"## CPU, {cores} cores, {count} SciFact abstracts embedded whole (builds, model load included)")
    print(f"one process: {single:.1f} s, {count / single:.1f} abstracts/s")
    print(f"Ray (1 actor of {cores} CPUs): {ray:.1f} s, {count / ray:.1f} abstracts/s")
    print(f"Ray's overhead: {100 * (statistics.median(ratios) - 1):+.0f}% (median of the {args.rounds} "
          f"rounds' ratios: {', '.join(f'{100 * (r - 1):+.0f}%' for r in ratios)})")


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("schemes", "ray"))
    parser.add_argument("--count", type=int, default=1500, help="abstracts for the CPU comparison")
    parser.add_argument("--gpu-count", type=int, default=50_000, help="abstracts for the CUDA comparison")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--whole", type=int, default=400, help="papers for the whole-abstract speed")
    parser.add_argument("--multi", type=int, default=60, help="papers for the multi-scale speed")
    parser.add_argument("--isolate", action="store_true",
                        help="re-run in a network namespace of its own (unshare -n, as root)")
    args = parser.parse_args()
    if args.isolate:
        argv = [a for a in sys.argv[1:] if a != "--isolate"]
        raise SystemExit(subprocess.call(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"',
                                          "sh", sys.executable, __file__, *argv]))
    if args.only in (None, "schemes"):
        schemes(args)
    if args.only in (None, "ray"):
        on_ray(args)


if __name__ == "__main__":
    main()
