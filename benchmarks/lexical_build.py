"""Building the BM25 index of N real abstracts four ways, each in a new process: time and peak
memory (maximum resident set).

usage: python benchmarks/lexical_build.py [--documents 108874] [--repeat 1] [--tantivy DIR]

  baseline   reading the texts only (what every row pays: Python, NumPy, the gzip stream)
  in-memory  lexical.build_lexical: every posting in memory, sorted at the end (formats <= this)
  streamed   lexical.StreamedLexical: sorted runs of 50,000 documents on disk, merged by column
             ranges (what `paperscope` builds with)
  bm25s      bm25s.tokenize + BM25.index (its own tokenizer and stemmer; in memory, then saved)
  tantivy    tantivy-py: an English-stemmed text field, a 200 MB writer heap, segments on disk
             (another tokenizer and BM25 formula; --tantivy names a folder holding the
             `tantivy` package, e.g. `pip install --target DIR tantivy`)

Texts: title and abstract of the records of ../shared/data/arxiv-snapshot-108k.jsonl.gz,
repeated --repeat times (as benchmarks/scale.py does), streamed from the file in every child.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT.parent / "shared" / "data" / "arxiv-snapshot-108k.jsonl.gz"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": str(ROOT / "src")}


def texts(documents: int, repeat: int):
    made = 0
    for copy in range(repeat):
        with gzip.open(SNAPSHOT, "rb") as handle:
            for n, line in enumerate(handle):
                if n >= documents:
                    break
                data = json.loads(line)
                yield f"{data['title']}{f' [{copy}]' if copy else ''}. {data['abstract']}"
                made += 1


def child(way: str, documents: int, repeat: int, folder: str) -> None:
    from paperscope.lexical import StreamedLexical, build_lexical, default_stopwords

    stream = texts(documents, repeat)
    if way == "baseline":
        import numpy  # noqa: F401

        for _ in stream:
            pass
    elif way == "in-memory":
        arrays = build_lexical(stream, default_stopwords())
        print(len(arrays.terms), len(arrays.data))
    elif way == "streamed":
        builder = StreamedLexical(default_stopwords(), folder)
        builder.add(stream)
        builder.finish()
        postings = 0
        with open(Path(folder) / "data.bin", "wb") as data, open(Path(folder) / "docs.bin", "wb") as docs:
            for block_docs, weights in builder.blocks():
                data.write(weights.tobytes())
                docs.write(block_docs.tobytes())
                postings += len(block_docs)
        for run in Path(folder).glob("run-*.bin"):  # the merged runs: only the arrays stay
            run.unlink()
        print(len(builder.terms), postings)
    elif way == "bm25s":
        import bm25s

        tokens = bm25s.tokenize(list(stream), stopwords="en", show_progress=False)
        model = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        model.index(tokens, show_progress=False)
        model.save(folder)
        print(len(tokens.vocab))
    elif way == "tantivy":
        import tantivy

        schema = tantivy.SchemaBuilder().add_text_field("body", stored=False, tokenizer_name="en_stem").build()
        index = tantivy.Index(schema, path=folder)
        writer = index.writer(heap_size=200_000_000, num_threads=1)
        for text in stream:
            writer.add_document(tantivy.Document(body=text))
        writer.commit()
        writer.wait_merging_threads()
        print("committed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=108_874)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--ways", nargs="+", default=["baseline", "in-memory", "streamed", "bm25s", "tantivy"])
    parser.add_argument("--tantivy", type=Path, help="a folder holding the tantivy package")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.tantivy:
            sys.path.insert(0, str(args.tantivy))
        child(args.child, args.documents, args.repeat, args.folder)
        return
    print(f"{args.documents:,} abstracts x {args.repeat}; {os.cpu_count()} cores", flush=True)
    print("| way | seconds | peak memory | on disk |")
    print("|---|---|---|---|")
    for way in args.ways:
        if way == "tantivy" and not args.tantivy:
            continue
        with tempfile.TemporaryDirectory() as folder:
            command = ["/usr/bin/time", "-f", "%e %M", sys.executable, __file__, "--child", way,
                       "--documents", str(args.documents), "--repeat", str(args.repeat), "--folder", folder]
            if args.tantivy:
                command += ["--tantivy", str(args.tantivy)]
            result = subprocess.run(command, capture_output=True, text=True, env=ENV)
            if result.returncode:
                print(f"| {way} | failed: {result.stderr.strip().splitlines()[-1]} | | |", flush=True)
                continue
            seconds, peak = result.stderr.strip().splitlines()[-1].split()
            disk = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
            print(f"| {way} | {float(seconds):.0f} s | {int(peak) / 1024:.0f} MB | {disk / 2**20:.0f} MB |",
                  flush=True)


if __name__ == "__main__":
    main()
