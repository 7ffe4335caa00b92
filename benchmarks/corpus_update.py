"""How long a `corpus update` takes when arXiv has nothing new (issue 20's target: the time of
its HTTP requests), and when it brings `--new` papers (target: their embedding plus 60 s).

usage: python benchmarks/corpus_update.py [--papers N] [--overlap N] [--latency S] [--new N]
           [--search auto|exact|approximate] [--dimension D] [--words N] [--real-sample N]

Builds a corpus of N synthetic cs.CL papers (whole abstracts, a hashed bag-of-words encoder:
the build is not what is measured) in a temporary cache, then runs `Corpus.update` five times
against a local OAI-PMH stand-in (tests/arxiv_server.py) that waits `latency` seconds before
each answer, as a far server would:
  1. nothing new (one `noRecordsMatch` page), right after `corpus build`: the documents are
     checked against the index once (a pass over every document)
  2. nothing new again: the index is known to be current, nothing is read
  3. the last harvest's day again: one page of `overlap` records, all as the corpus holds them
  4. the same page with one paper changed: one paper embedded, the index committed again
  5. nothing new after that
  6. `new` papers never seen (one page), when `--new` is not 0: they are embedded, the whole
     index is written again
For each: the whole update, the time spent in HTTP requests, and what is left (applying,
checking the index, committing). For the last, `rest` (the target: at most 60 s) is split
into where its time goes, and the time the real CPU encoder would take for those papers is
estimated from `--real-sample` of their abstracts (0: not measured). The fake encoder gives
vectors of `--dimension` (384 by default, the default model's), so that writing vectors and
the approximate index cost what they would.
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import json
import pstats
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from paperscope import indexer  # noqa: E402
from paperscope.corpora import Corpus, SnapshotFilter  # noqa: E402
from paperscope.index import IndexWriter  # noqa: E402
from paperscope.sources.oaipmh import OaiPmhSource  # noqa: E402
from tests.arxiv_server import ArxivStub  # noqa: E402
from tests.conftest import FakeEncoder  # noqa: E402

NO_RECORDS = (ROOT / "tests" / "fixtures" / "oaipmh" / "no-records.xml").read_text()
HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
        "<responseDate>2026-11-20T09:00:00Z</responseDate><request>x</request><ListRecords>")
WORDS = ["adapter", "attention", "corpus", "decoding", "embedding", "finetuning", "gradient",
         "language", "latent", "model", "parameter", "quantization", "retrieval", "sparse", "token",
         "transformer", "translation"]


def paper(n: int, length: int = 40) -> tuple[str, str, str]:
    """Paper n (2611.nnnnn, then 2610.nnnnn past 100,000): an abstract of `length` words, the
    first 40 of a few, the others of a vocabulary of 20,000 as real abstracts have."""
    words = [WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(min(40, length))]
    words += [f"term{(n * 31 + i * 17 + i * i) % 20_000}" for i in range(40, length)]
    arxiv_id = f"26{11 - n // 100_000:02d}.{n % 100_000:05d}"
    return arxiv_id, f"Paper {n} on {words[0]} and {words[1]}", " ".join(words) + f" {n}."


def oai_page(numbers: range, length: int, changed: int | None = None) -> str:
    records = []
    for n in numbers:
        arxiv_id, title, abstract = paper(n, length)
        if n == changed:
            abstract += " Revised."
        records.append(
            f"<record><header><identifier>oai:arXiv.org:{arxiv_id}</identifier><datestamp>2026-11-20"
            "</datestamp></header><metadata><arXiv xmlns=\"http://arxiv.org/OAI/arXiv/\">"
            f"<id>{arxiv_id}</id><created>2026-11-02</created><authors><author><keyname>Author"
            "</keyname><forenames>A.</forenames></author></authors>"
            f"<title>{title}</title><categories>cs.CL</categories><abstract>{abstract}</abstract>"
            "</arXiv></metadata></record>")
    return HEAD + "".join(records) + "</ListRecords></OAI-PMH>"


class Timings:
    """Seconds spent in named functions of paperscope's modules while patched in."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def wrap(self, owner, name: str, label: str) -> None:
        function = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(label, started)

        def timed_items(*args, **kwargs):  # a generator's time is that of its items
            items = function(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    self.add(label, started)
                yield item

        setattr(owner, name, timed_items if inspect.isgeneratorfunction(function) else timed)

    def add(self, label: str, started: float) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started


class SizedEncoder(FakeEncoder):
    """The fake encoder with vectors of a chosen dimension, timing its calls."""

    def __init__(self, dimension: int):
        super().__init__()
        self.dimension = dimension
        self.seconds = 0.0

    def encode(self, texts, progress=None):
        started = time.perf_counter()
        try:
            return super().encode(texts, progress)
        finally:
            self.seconds += time.perf_counter() - started


def real_encoder_seconds(count: int, sample: int, length: int) -> tuple[str, float] | None:
    """The seconds the default model's CPU build encoder (as a build of `count` papers in a
    large corpus loads it) would take for `count` new abstracts, from a sample of them."""
    from paperscope.embedding import BUILD_ENCODERS, DEFAULT_MODEL, encoder_kind, load_encoder
    from paperscope.errors import ModelUnavailableError

    try:
        encoder = load_encoder(DEFAULT_MODEL, kinds=BUILD_ENCODERS)
    except ModelUnavailableError as err:
        print(f"(real encoder not measured: {err})")
        return None
    texts = [f"{title}. {abstract}" for _, title, abstract in (paper(n, length) for n in range(sample))]
    encoder.encode(texts[:2])
    started = time.perf_counter()
    encoder.encode(texts)
    return encoder_kind(encoder), (time.perf_counter() - started) * count / sample


class TimedSource(OaiPmhSource):
    """The OAI-PMH source, adding up the time its HTTP exchanges take."""

    http_seconds = 0.0

    def _page(self, params):
        started = time.perf_counter()
        try:
            return super()._page(params)
        finally:
            self.http_seconds += time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=20_000)
    parser.add_argument("--overlap", type=int, default=1_000)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--new", type=int, default=2_000)
    parser.add_argument("--words", type=int, default=40, help="words in an abstract (real: ~150)")
    parser.add_argument("--search", default="approximate", choices=("auto", "exact", "approximate"))
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--real-sample", type=int, default=200)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the N functions of the last update that took longest (cumulative, own time)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["PAPERSCOPE_CACHE"] = tmp
        snapshot = Path(tmp) / "snapshot.jsonl"
        with snapshot.open("w") as out:
            for n in range(args.papers):
                arxiv_id, title, abstract = paper(n, args.words)
                out.write(json.dumps({"id": arxiv_id, "title": title, "abstract": abstract,
                                      "categories": "cs.CL", "authors": "A. Author",
                                      "authors_parsed": [["Author", "A.", ""]],
                                      "versions": [{"version": "v1",
                                                    "created": "Mon, 2 Nov 2026 10:00:00 GMT"}]}) + "\n")
        encoder = SizedEncoder(args.dimension)
        corpus = Corpus("bench", encoder=encoder)
        corpus.import_snapshot(snapshot, SnapshotFilter(("cs.CL",)))
        started = time.perf_counter()
        corpus.build(scheme="whole", search=args.search)
        print(f"corpus: {args.papers:,} papers, built in {time.perf_counter() - started:.1f} s; "
              f"server latency {args.latency:g} s per answer; search {args.search}, "
              f"dimension {args.dimension}")
        overlap = range(min(args.overlap, args.papers))
        page = oai_page(overlap, args.words)
        cases = [("nothing new, after `corpus build`", NO_RECORDS),
                 ("nothing new, after an update", NO_RECORDS),
                 (f"{args.overlap:,} records, none changed", page),
                 (f"{args.overlap:,} records, one changed", oai_page(overlap, args.words, 0)),
                 ("nothing new, after that", NO_RECORDS)]
        if args.new:
            cases.append((f"{args.new:,} new papers", oai_page(range(args.papers, args.papers + args.new), args.words)))
        timings = Timings()
        for owner, name, label in [(Corpus, "_apply", "applying the records"),
                                   (indexer, "documents_digest", "digest of the documents"),
                                   (indexer, "plan_embedding", "planning (hashing texts)"),
                                   (indexer, "_write_vectors", "rewriting all vectors"),
                                   (indexer, "write_document_table",
                                    "document table + BM25 terms"),
                                   (indexer.StreamedLexical, "blocks", "BM25 postings merge"),
                                   (indexer, "_approximate_index", "IVF train + add (all)"),
                                   (IndexWriter, "commit", "commit (rename, fsync)"),
                                   (indexer, "_retire", "retiring old vectors")]:
            timings.wrap(owner, name, label)
        print(f"{'update':<38} {'total s':>8} {'HTTP s':>8} {'rest s':>8} {'embedded':>9}")
        with ArxivStub() as stub:
            for label, body in cases:
                stub.script = [("body", body, args.latency)]
                source = TimedSource(stub.url, delay_seconds=0)
                timings.seconds.clear()
                encoder.seconds = 0.0
                profile = cProfile.Profile() if args.profile and body is cases[-1][1] else None
                started = time.perf_counter()
                if profile:
                    profile.enable()
                report = corpus.update(source, today=date(2026, 11, 20), scheme="whole",
                                       search=args.search)
                total = time.perf_counter() - started
                if profile:
                    profile.disable()
                print(f"{label:<38} {total:>8.3f} {source.http_seconds:>8.3f} "
                      f"{total - source.http_seconds:>8.3f} {len(report.build.embedded):>9}")
        if args.new:
            rest = total - source.http_seconds - encoder.seconds
            print(f"\n{args.new:,} new papers: total {total:.2f} s = HTTP {source.http_seconds:.2f} s "
                  f"+ embedding (fake encoder) {encoder.seconds:.2f} s + rest {rest:.2f} s "
                  f"(target: rest <= 60 s); the rest:")
            for label, seconds in timings.seconds.items():
                print(f"  {label:<32} {seconds:>8.2f} s")
            print(f"  {'other':<32} {rest - sum(timings.seconds.values()):>8.2f} s")
            if profile:
                for order in ("cumulative", "tottime"):
                    pstats.Stats(profile).sort_stats(order).print_stats(args.profile)
            if args.real_sample:
                measured = real_encoder_seconds(args.new, min(args.real_sample, args.new), args.words)
                if measured:
                    print(f"the real encoder ({measured[0]}) would embed the {args.new:,} abstracts in "
                          f"about {measured[1]:.1f} s (from {min(args.real_sample, args.new)} of them)")
        print("(shared 2-core machine; `rest` is applying the records, checking the documents' "
              "digest and, when one changed, embedding it and committing the index)")


if __name__ == "__main__":
    main()
