"""Building an index: documents whose text is unchanged keep their vectors; the rest are
embedded in chunks that are committed as they are made, so that an interrupted build resumes
where it stopped; the index is then assembled from the old index and the chunks and written
through the index format's atomic commit (see index.py and chunks.py)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from . import chunks
from .embedding import (
    BUILD_ENCODERS,
    EXACT_BUILD_ENCODERS,
    QUANTISED_FROM_PASSAGES,
    SMALL_BUILD_ENCODERS,
    Encoder,
    encoder_kind,
    load_encoder,
    model_fingerprint,
    resolve_model_dir,
)
from .errors import IndexMismatchError, PaperscopeError, UsageError
from .index import (
    ZDICT_BYTES,
    IndexStore,
    IndexWriter,
    Manifest,
    OpenIndex,
    documents_digest,
    meta_json,
    write_document_table,
)
from .lexical import BM25_PARAMS, TOKENIZER_VERSION, StreamedLexical, default_stopwords
from .records import Document
from .settings import BUILD_ENCODER_ENV, settings_change
from .text import DEFAULT_SCHEME, SCHEMES, counted, passages
from .version import __version__

# Up to this many new passages are embedded by the light NumPy encoder (instant start, 24
# passages/s here); more go through sentence-transformers (7 s to start, then 55 passages/s
# here, and CUDA where there is one). The two take the same time at about 300 passages.
LIGHT_ENCODER_LIMIT = 300
# Corpora of more documents than this are embedded whole, one vector a document (text.SCHEMES).
WHOLE_SCHEME_FROM = 20_000
# Indexes of more passages than this get an approximate FAISS index (README "Scale").
ANN_FROM_PASSAGES = 100_000
SEARCH_METHODS = ("auto", "exact", "approximate")
# Documents embedded per committed chunk at most; a chunk also holds no more than about
# CHUNK_SECONDS of work, measured as the build goes, so that a kill loses at most about a minute
# whatever the passage scheme, model or machine (issue 19).
CHUNK_DOCUMENTS = 2000
CHUNK_SECONDS = 60.0
# The first chunk, before any speed is measured: a few seconds of work on a laptop CPU.
FIRST_CHUNK_CHARACTERS = 100_000
# Multi-scale passages are the default up to WHOLE_SCHEME_FROM documents, unless embedding them
# here would take longer than this (estimated from the speed measured on a sample).
SCHEME_BUDGET_SECONDS = 600.0

log = logging.getLogger(__name__)
# The build's clock (a test replaces it with a fake one).
_clock = time.monotonic


@dataclass
class BuildReport:
    """What a build did."""

    embedded: list[str] = field(default_factory=list)
    reused: int = 0
    resumed: int = 0  # documents whose vectors came from chunk files
    removed: list[str] = field(default_factory=list)
    total: int = 0
    model: str = ""
    scheme: str = ""
    search: str = "exact"
    reason: str = ""  # why everything was embedded again, when it was
    device: str = "cpu"
    encoder: str = ""  # the encoder kind that made the vectors (this build's, else the old index's)
    written: bool = False  # False when the index was already up to date


def choose_scheme(count: int) -> str:
    """The passage scheme by size alone: whole abstracts above WHOLE_SCHEME_FROM documents."""
    return "whole" if count > WHOLE_SCHEME_FROM else DEFAULT_SCHEME


def _open_previous(store: IndexStore) -> tuple[OpenIndex | None, str]:
    """The old index, opened with the everyday checks (a damaged manifest or file means
    embedding everything); or None and why it cannot be used. A byte changed in the middle of
    a file is `status --verify`'s to find, and `build --full`'s to repair: hashing every file
    on each build would cost seconds at a million documents."""
    try:
        if store.read_manifest() is None:
            return None, ""
        return store.open(), ""
    except PaperscopeError as err:
        return None, f"the old index could not be used ({err.message})"


@dataclass(slots=True)
class VectorSource:
    """Where one document's vectors are: rows of the old index, or of a chunk file."""

    chunk: Any  # a chunk file Path, or None for the old index
    first: int
    count: int


@dataclass
class EmbeddingPlan:
    """What a build of some documents with `model` and `scheme` has to embed: where the vectors
    it can reuse are (`pool`, by content hash: rows of the old index or of chunk files) and the
    positions of the documents still missing (`todo`, in document order)."""

    model: str
    scheme: str
    hashes: list[str]  # every document's content hash, in document order
    pool: dict[str, VectorSource]
    todo: list[int]

    @property
    def resumed(self) -> int:
        """Documents whose vectors come from chunk files."""
        return sum(1 for h in self.hashes if h in self.pool and self.pool[h].chunk is not None)

    def ranges(self, size: int) -> list[list[int]]:
        """The missing documents' positions in runs of at most `size`: one chunk file each."""
        return [self.todo[start:start + size] for start in range(0, len(self.todo), max(1, size))]

    def commit(self, store: IndexStore, positions: Sequence[int], counts: Sequence[int],
               vectors: np.ndarray, *, source: str = "") -> Path:
        """Write the vectors of the documents at `positions` (`counts` passages each, in order)
        as one chunk file, and take them into the pool; returns the file."""
        hashes = [self.hashes[i] for i in positions]
        store.chunks_dir.mkdir(parents=True, exist_ok=True)
        path = chunks.write_chunk(store.chunks_dir, model=self.model, scheme=self.scheme,
                                  source=source, start=positions[0], hashes=hashes, counts=counts,
                                  vectors=vectors)
        offset = 0
        for h, count in zip(hashes, counts, strict=True):
            self.pool.setdefault(h, VectorSource(path, offset, count))
            offset += count
        return path


def plan_embedding(store: IndexStore, documents: Sequence[Document], *, model: str, scheme: str,
                   old: OpenIndex | None = None) -> EmbeddingPlan:
    """What is left to embed for an index of `documents`: the vectors of `old` (an index made
    with the same model and scheme, whose vectors may be reused) and of the matching chunk files
    in the store's chunk folder are taken as they are; the rest is `todo`."""
    hashes = [doc.content_hash for doc in documents]
    pool: dict[str, VectorSource] = {}
    if old is not None:
        pool = {h: VectorSource(None, first, count) for h, (first, count) in old.content_rows().items()}
    wanted = set(hashes)
    for path in chunks.chunk_files(store.chunks_dir):
        info = chunks.read_chunk_info(path)
        if info is None or info.model != model or info.scheme != scheme:
            continue
        offset = 0
        for h, count in zip(info.hashes, info.counts, strict=True):
            if h in wanted and h not in pool:
                pool[h] = VectorSource(path, offset, count)
            offset += count
    return EmbeddingPlan(model, scheme, hashes, pool, [i for i, h in enumerate(hashes) if h not in pool])


@dataclass
class EmbeddingJob:
    """What an embedder is given: the plan to carry out, committing each finished run of
    documents with `plan.commit(store, ...)` as soon as it is done, so that a killed build keeps
    it. `progress(n)` counts documents embedded; `on_encoder(kind, count, reason)` is told what
    embeds how many documents before it starts."""

    store: IndexStore
    documents: Sequence[Document]
    plan: EmbeddingPlan
    report: BuildReport
    source: str = ""
    on_encoder: Callable[[str, int, str], None] | None = None
    progress: Callable[[int], None] | None = None
    chunk_documents: int = CHUNK_DOCUMENTS

    def commit(self, positions: Sequence[int], counts: Sequence[int], vectors: np.ndarray) -> Path:
        return self.plan.commit(self.store, positions, counts, vectors, source=self.source)


# An embedder carries out a plan (every document of `job.plan.todo`, committed in chunk files)
# and returns the dimension of the vectors: this process (the default) or a Ray cluster
# (distributed.py).
Embedder = Callable[[EmbeddingJob], int]


def check_scheme(scheme: str) -> None:
    """UsageError unless `scheme` names a passage scheme (text.SCHEMES)."""
    if scheme not in SCHEMES:
        raise UsageError(f"Unknown passage scheme {scheme!r}: choose one of {', '.join(SCHEMES)}.")


def build_index(store: IndexStore, documents: Sequence[Document], *, model: str,
                full: bool = False, encoder: Encoder | None = None, scheme: str | None = None,
                search: str = "auto", source: str = "",
                on_encoder: Callable[[str, int, str], None] | None = None,
                progress: Callable[[int], None] | None = None,
                chunk_documents: int = CHUNK_DOCUMENTS, embedder: Embedder | None = None) -> BuildReport:
    """Embed what changed and commit a new index of `documents` to `store`.

    `scheme` is a passage scheme of text.SCHEMES (by default the old index's, else that of an
    interrupted build's chunks, else chosen by the number of documents and the time embedding
    them would take: `default_scheme`); `search` is auto, exact or approximate.
    `on_encoder(kind, count, reason)` is told which encoder embeds how many documents, and why
    everything is embedded again when it is, before the encoder loads; `progress(n)` counts
    documents embedded. `embedder` embeds elsewhere (distributed.ray_embedder); by default this
    process does, with `encoder` or the one `load_encoder` gives."""
    if search not in SEARCH_METHODS:
        raise UsageError(f"Unknown search method {search!r}: choose one of {', '.join(SEARCH_METHODS)}.")
    if scheme is not None:
        check_scheme(scheme)
    old, reason = _open_previous(store)
    try:
        scheme = scheme or (old.manifest.scheme if old and old.manifest.scheme in SCHEMES else None) or \
            _started_scheme(store, model)
        loaded = False
        if scheme is None:
            if embedder is None:
                loaded = encoder is None
                scheme, encoder = default_scheme(documents, model, encoder)
                loaded = loaded and encoder is not None
            else:
                scheme = choose_scheme(len(documents))
        report = BuildReport(total=len(documents), model=model, scheme=scheme)
        reason = "--full was asked for" if full else reason or (
            settings_change(old.manifest, model, scheme) if old else "")
        report.reason = reason
        report.encoder = (old.manifest.encoder or "") if old and not reason else ""

        def here(job: EmbeddingJob) -> int:
            return _embed(job, encoder, announce=loaded)

        return _build(store, documents, old, report, embedder=embedder or here, search=search, source=source,
                      on_encoder=on_encoder, progress=progress, chunk_documents=chunk_documents)
    finally:
        if old is not None:
            old.close()


def default_scheme(documents: Sequence[Document], model: str,
                   encoder: Encoder | None = None) -> tuple[str, Encoder | None]:
    """The passage scheme of a new index of `documents`, and the encoder loaded to decide it
    (or `encoder`): whole abstracts above WHOLE_SCHEME_FROM documents, or when multi-scale
    passages would take longer than SCHEME_BUDGET_SECONDS at the speed measured here on a
    sample of them (said in a warning, with how to ask for multi-scale passages)."""
    count = len(documents)
    if count > WHOLE_SCHEME_FROM:
        return "whole", encoder
    if not count:
        return DEFAULT_SCHEME, encoder
    sample = [documents[int(i)] for i in np.unique(np.linspace(0, count - 1, min(count, 200)).astype(int))]
    groups = [passages(doc, SCHEMES[DEFAULT_SCHEME]) for doc in sample]
    if sum(map(len, groups)) / len(sample) * count <= SCHEME_MEASURE_FROM:
        return DEFAULT_SCHEME, encoder
    if encoder is None:
        encoder = load_encoder(model, kinds=BUILD_ENCODERS)
    step = max(1, len(groups) // 24)  # about 24 documents' passages, spread over the corpus
    probe = [text for group in groups[::step] for text in group][:PROBE_PASSAGES]
    encoder.encode(probe[:2])  # the first call of a model warms up
    started = _clock()
    encoder.encode(probe)
    rate = sum(map(len, probe)) / max(_clock() - started, 1e-6)  # characters a second
    per_document = sum(len(text) for group in groups for text in group) / len(sample)
    seconds = per_document * count / rate
    if seconds <= SCHEME_BUDGET_SECONDS:
        return DEFAULT_SCHEME, encoder
    whole = sum(len(doc.embedding_text) for doc in sample) / len(sample) * count / rate
    log.warning("Embedding %s in multi-scale passages would take about %s here; each is embedded "
                "whole instead (about %s, a little less precise search). To embed multi-scale "
                "passages anyway, build with --passages multi-scale.",
                counted(count, "document"), _minutes(seconds), _minutes(whole))
    return "whole", encoder


# Below this many multi-scale passages (estimated), default_scheme takes them without measuring:
# under ten minutes at 5 passages a second, slower than any machine.
SCHEME_MEASURE_FROM = 3000
PROBE_PASSAGES = 96


def _minutes(seconds: float) -> str:
    return f"{round(seconds / 60)} min" if seconds >= 90 else f"{max(1, round(seconds))} s"


def _build(store: IndexStore, documents: Sequence[Document], old: OpenIndex | None,
           report: BuildReport, *, embedder: Embedder, search: str, source: str,
           on_encoder, progress, chunk_documents: int) -> BuildReport:
    model, scheme = report.model, report.scheme
    old_ids = old.ids() if old else []
    new_ids = {doc.id for doc in documents}
    report.removed = [doc_id for doc_id in old_ids if doc_id not in new_ids]
    del new_ids
    digest = documents_digest(documents)
    if old and not report.reason and old.manifest.documents_digest == digest and \
            old.manifest.search_requested == search and \
            old.manifest.tokenizer == TOKENIZER_VERSION:  # else: new BM25 arrays, same vectors
        report.search = old.manifest.search
        return report

    plan = plan_embedding(store, documents, model=model, scheme=scheme,
                          old=old if old and not report.reason else None)
    hashes, pool = plan.hashes, plan.pool
    report.embedded = [documents[i].id for i in plan.todo]
    report.resumed = plan.resumed
    report.reused = len(documents) - len(plan.todo) - report.resumed

    if plan.todo:
        dimension = embedder(EmbeddingJob(store, documents, plan, report, source=source,
                                          on_encoder=on_encoder, progress=progress,
                                          chunk_documents=chunk_documents))
    else:
        dimension = old.dimension if old and not report.reason else _chunk_dimension(pool)
    writer = store.writer()
    try:
        report.search, fields = _write(writer, documents, hashes, pool, old, dimension, search)
        model_dir = resolve_model_dir(model)
        names = fields["facets"]
        writer.commit(Manifest(
            model=model,
            model_fingerprint=model_fingerprint(model_dir) if model_dir else None,
            encoder=report.encoder or None,
            dimension=dimension,
            count=len(documents),
            passages=int(sum(pool[h].count for h in hashes)),
            scheme=scheme,
            scheme_words=SCHEMES[scheme],
            search=report.search,
            ann_lists=_ann_lists(writer) if report.search != "exact" else None,
            search_requested=search,
            documents_digest=digest,
            sections=tuple(names["sections"]), kinds=tuple(names["kinds"]), tags=tuple(names["tags"]),
            lexical={"library": "paperscope", "stemmer": "english", **BM25_PARAMS},
            stopwords=tuple(default_stopwords()),
            tokenizer=TOKENIZER_VERSION,
            versions=_versions(),
            vectors_dtype=fields.get("vectors_dtype", "float32"),
            weights_dtype=fields.get("weights_dtype", "float32"),
            hashed_names="zdict" in writer.files,
        ))
    except BaseException:
        writer.discard()
        raise
    _remove_consumed_chunks(store, set(hashes), model, scheme)
    if old is not None and pool and not report.reason:
        _retire(store, old, pool, set(hashes), model, scheme)
    report.written = True
    return report


def build_encoders(plan: EmbeddingPlan, documents: Sequence[Document]) -> tuple[str, ...]:
    """The encoder kinds to try for the passages the plan has left: the NumPy encoder for a few
    (it starts at once); for more, exact ONNX vectors in a collection of under
    QUANTISED_FROM_PASSAGES passages (the catalogue keeps the reference vectors), int8 ONNX in
    a larger one. The collection's size, not what is left of it, decides, so that a resumed
    build (here or on Ray) uses the encoder the interrupted one did. $PAPERSCOPE_BUILD_ENCODER
    names one kind for every build instead."""
    if chosen := os.environ.get(BUILD_ENCODER_ENV):
        return (chosen,)
    lengths = SCHEMES[plan.scheme]
    left = sum(len(passages(documents[i], lengths)) for i in plan.todo)
    if left <= LIGHT_ENCODER_LIMIT:
        return SMALL_BUILD_ENCODERS
    estimated = left * len(documents) / max(1, len(plan.todo))
    return EXACT_BUILD_ENCODERS if estimated < QUANTISED_FROM_PASSAGES else BUILD_ENCODERS


def _embed(job: EmbeddingJob, encoder: Encoder | None, *, announce: bool = False) -> int:
    """Embed the plan's documents in this process, committing a chunk file each time
    `job.chunk_documents` documents or about CHUNK_SECONDS of work (at the speed measured on the
    chunks before) are done, whichever comes first."""
    plan, report, documents = job.plan, job.report, job.documents
    lengths = SCHEMES[plan.scheme]
    if encoder is None or announce:
        kinds = build_encoders(plan, documents)
        if job.on_encoder:
            job.on_encoder(kinds[0] if encoder is None else encoder_kind(encoder), len(plan.todo),
                           report.reason)
        if encoder is None:
            encoder = load_encoder(report.model, kinds=kinds)
    report.device = getattr(encoder, "device", "cpu")
    report.encoder = encoder_kind(encoder)
    budget = float(FIRST_CHUNK_CHARACTERS)  # characters in the next chunk
    position = 0
    while position < len(plan.todo):
        batch: list[int] = []
        texts: list[list[str]] = []
        size = 0
        while position < len(plan.todo) and len(batch) < job.chunk_documents and (not batch or size < budget):
            group = passages(documents[plan.todo[position]], lengths)
            batch.append(plan.todo[position])
            texts.append(group)
            size += sum(map(len, group))
            position += 1
        flat = [text for group in texts for text in group]
        started = _clock()
        vectors = encoder.encode(flat, progress=_per_document(job.progress, [len(t) for t in texts]))
        elapsed = _clock() - started
        if vectors.shape[1:] != (encoder.dimension,):
            raise IndexMismatchError(f"The model {report.model} gave vectors of shape {vectors.shape}.")
        job.commit(batch, [len(t) for t in texts], vectors)
        # The next chunk holds what this speed embeds in CHUNK_SECONDS.
        budget = size / elapsed * CHUNK_SECONDS if elapsed > 0 else math.inf
    return encoder.dimension


def _started_scheme(store: IndexStore, model: str) -> str | None:
    """The passage scheme of most chunks of `model` left by an interrupted build, if any."""
    found = Counter(info.scheme for info in map(chunks.read_chunk_info, chunks.chunk_files(store.chunks_dir))
                    if info is not None and info.model == model and info.scheme in SCHEMES)
    return found.most_common(1)[0][0] if found else None


def _chunk_dimension(pool: dict[str, VectorSource]) -> int:
    for entry in pool.values():
        if entry.chunk is not None:
            info = chunks.read_chunk_info(entry.chunk)
            if info is not None:
                return info.dimension
    return 0


# Approximate indexes are also compact (README "Scale", docs/experiments.md): float16 vectors,
# float16 BM25 weights, and the document table's texts compressed with a dictionary.
COMPACT_VECTORS = "float16"
COMPACT_WEIGHTS = "float16"
VECTOR_BLOCK = 65536  # rows written, or read into the approximate index, at a time


def _write(writer: IndexWriter, documents: Sequence[Document], hashes: list[str], pool: dict[str, VectorSource],
           old: OpenIndex | None, dimension: int, search: str) -> tuple[str, dict[str, Any]]:
    """Stage every data file of the new index, streaming: the vectors, then one pass over the
    documents for the document table, the BM25 postings (merged on disk) and the facets.
    Returns the search method written and the manifest's fields that describe the files."""
    counts = np.fromiter((pool[h].count for h in hashes), dtype=np.int64, count=len(hashes))
    bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    del counts
    total = int(bounds[-1])
    approximate = bool(total) and (search == "approximate" or (search == "auto" and total > ANN_FROM_PASSAGES))
    fields: dict[str, Any] = {}
    if approximate:
        fields["vectors_dtype"] = COMPACT_VECTORS
    _write_vectors(writer, hashes, pool, old, dimension, total, fields.get("vectors_dtype", "float32"))
    writer.array("bounds", bounds)
    del bounds
    zdict = _compression_dictionary(documents) if approximate else None
    if zdict is not None:
        writer.array("zdict", np.frombuffer(zdict, dtype=np.uint8))
    weights = COMPACT_WEIGHTS if approximate else "float32"
    builder = StreamedLexical(default_stopwords(), writer.temp_folder("bm25"), weights_dtype=weights,
                              version=TOKENIZER_VERSION)
    facets = _FacetCollector(len(documents))

    def each_document():
        for document, content_hash in zip(documents, hashes, strict=True):
            builder.add((document.embedding_text,))
            facets.add(document)
            yield document, content_hash

    def terms() -> list[str]:
        builder.finish()
        return builder.terms

    with writer.sqlite("documents", vacuum=not approximate) as connection:
        write_document_table(connection, each_document(), terms, _tags, zdict=zdict)
    postings = int(builder.indptr[-1])
    with writer.stream_array("bm25data", (postings,), weights) as data, \
            writer.stream_array("bm25docs", (postings,), np.int32) as docs:
        for block_docs, block_weights in builder.blocks():
            data(block_weights)
            docs(block_docs)
    writer.array("bm25ptr", builder.indptr)
    shutil.rmtree(builder.folder, ignore_errors=True)
    fields["facets"], facet_array = facets.finish()
    writer.array("facets", facet_array)
    if weights != "float32":
        fields["weights_dtype"] = weights
    if approximate:
        writer.faiss("ann", _approximate_index(writer, dimension))
        return "ivf-sq4", fields
    return "exact", fields


def _write_vectors(writer: IndexWriter, hashes: list[str], pool: dict[str, VectorSource], old: OpenIndex | None,
                   dimension: int, total: int, dtype: str) -> None:
    """The passage vectors in document order, from the old index and the chunk files, written
    front to back a block at a time."""
    loaded: tuple[Any, np.ndarray] = (None, np.empty((0, dimension), np.float32))
    block: list[np.ndarray] = []
    rows_in_block = 0
    with writer.stream_array("vectors", (total, dimension), dtype) as append:
        for h in hashes:
            entry = pool[h]
            if entry.chunk is None:
                assert old is not None  # a vector in no chunk file is the old index's
                rows = np.asarray(old.vectors[entry.first:entry.first + entry.count])
            else:
                if loaded[0] != entry.chunk:
                    loaded = (entry.chunk, chunks.read_vectors(entry.chunk))
                rows = loaded[1][entry.first:entry.first + entry.count]
            if rows.shape != (entry.count, dimension):
                raise IndexMismatchError(f"Vectors of dimension {rows.shape[-1]} cannot join an "
                                         f"index of dimension {dimension}.", "Rebuild with --full.")
            block.append(rows)
            rows_in_block += entry.count
            if rows_in_block >= VECTOR_BLOCK:
                append(np.concatenate(block))
                block, rows_in_block = [], 0
        if block:
            append(np.concatenate(block))


def _compression_dictionary(documents: Sequence[Document]) -> bytes:
    """A zlib dictionary for the texts of a large document table: the abstracts and metadata
    of documents spread evenly over the corpus (32 KiB, metadata last, as it repeats most)."""
    count = len(documents)
    picks = sorted({count * i // 64 for i in range(64)}) if count else []
    sample = [documents[i] for i in picks]
    texts = "".join(doc.text for doc in sample).encode("utf-8")[-(ZDICT_BYTES - 4096):]
    metas = "".join(meta_json(doc.meta) for doc in sample).encode("utf-8")[-4096:]
    return texts + metas


class _FacetCollector:
    """The facets array and names, gathered one document at a time."""

    def __init__(self, count: int):
        self.years = np.zeros(count, dtype=np.int32)
        self.sections: list[int] = []
        self.kinds: list[int] = []
        self.keys: tuple[dict[str, int], dict[str, int]] = ({}, {})
        self.named: tuple[set[str], set[str]] = (set(), set())
        self.tags: set[str] = set()

    def add(self, document: Document) -> None:
        meta = document.meta
        self.years[len(self.sections)] = _year(meta)
        for field_name, codes, keys, named in (("section", self.sections, self.keys[0], self.named[0]),
                                               ("kind", self.kinds, self.keys[1], self.named[1])):
            value = meta.get(field_name)
            key = str(value)
            codes.append(keys.setdefault(key, len(keys)))
            if value:
                named.add(key)
        self.tags |= _tags(document)

    def finish(self) -> tuple[dict[str, list[str]], np.ndarray]:
        names = {"sections": sorted(self.named[0]), "kinds": sorted(self.named[1]), "tags": sorted(self.tags)}
        out = np.empty((len(self.sections), 3), dtype=np.int32)
        out[:, 0] = self.years[:len(self.sections)]
        for column, codes, keys, field_name in ((1, self.sections, self.keys[0], "sections"),
                                                (2, self.kinds, self.keys[1], "kinds")):
            final = {name: i for i, name in enumerate(names[field_name])}
            remap = np.full(max(1, len(keys)), -1, dtype=np.int32)
            for key, code in keys.items():
                remap[code] = final.get(key, -1)
            out[:, column] = remap[np.asarray(codes, dtype=np.int64)] if codes else np.zeros(0, np.int32)
        return names, out


def _approximate_index(writer: IndexWriter, dimension: int):
    """An IVF index with 4-bit scalar quantisation over the staged vectors (inner product),
    reading them a block at a time (in float32, whatever type they are stored in). It only
    proposes candidates, which search re-scores from the vectors: 4 bits find them as well as
    8 did, in half the bytes (docs/experiments.md)."""
    import faiss

    path = writer.staged_path("vectors")
    total = _rows(path)
    lists = int(min(65536, max(1, min(total // 39, 2 * math.sqrt(total)))))
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dimension, lists,
                                          faiss.ScalarQuantizer.QT_4bit, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(total, size=min(total, 64 * lists), replace=False))
    training = np.concatenate([block[sample[(sample >= start) & (sample < start + len(block))] - start]
                               for start, block in _vector_blocks(path)])
    index.cp.niter = 15
    index.train(training)
    del training
    for _, block in _vector_blocks(path):
        index.add(block)
    return index


def _rows(path: Path) -> int:
    """The number of rows of a staged array file, from its header."""
    with open(path, "rb") as handle:
        np.lib.format.read_magic(handle)
        shape, _, _ = np.lib.format.read_array_header_1_0(handle)
    return int(shape[0])


def _vector_blocks(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 rows) of a staged vectors file, VECTOR_BLOCK rows at a time, read
    through the file (not mapped, so that they do not stay resident)."""
    with open(path, "rb") as handle:
        np.lib.format.read_magic(handle)
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        for start in range(0, shape[0], VECTOR_BLOCK):
            rows = min(VECTOR_BLOCK, shape[0] - start)
            block = np.fromfile(handle, dtype=dtype, count=rows * shape[1]).reshape(rows, shape[1])
            yield start, np.ascontiguousarray(block, dtype=np.float32)


def _ann_lists(writer: IndexWriter) -> int:
    """The number of lists of the approximate index just staged."""
    import faiss

    index = faiss.read_index(str(writer.staged_path("ann")), faiss.IO_FLAG_MMAP_IFC)
    return int(faiss.extract_index_ivf(index).nlist)


def _year(meta: dict) -> int:
    year = meta.get("year")
    if isinstance(year, str) and year.isdigit():
        year = int(year)
    return year if isinstance(year, int) and not isinstance(year, bool) and 0 < year < 10000 else 0


def _tags(document: Document) -> set[str]:
    """A document's tags as filters compare them (without case)."""
    tags = document.meta.get("tags")
    return {str(tag).casefold() for tag in tags} if isinstance(tags, list) else set()


def _remove_consumed_chunks(store: IndexStore, indexed: set[str], model: str, scheme: str) -> None:
    """Delete chunk files of this model and scheme whose every document is now in the index."""
    for path in chunks.chunk_files(store.chunks_dir):
        info = chunks.read_chunk_info(path)
        if info is not None and (info.model, info.scheme) == (model, scheme) and set(info.hashes) <= indexed:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        store.chunks_dir.rmdir()


# Vectors of documents that leave an index (edited or removed) are kept in a chunk file, up to
# this many documents a build and this many such files, so that undoing an edit
# (`git checkout catalogue.yaml`) finds them again instead of embedding them anew.
RETIRE_DOCUMENTS = 1000
RETIRED_CHUNKS = 20


def _retire(store: IndexStore, old: OpenIndex, pool: dict[str, VectorSource], indexed: set[str],
            model: str, scheme: str) -> None:
    leaving = [(h, entry) for h, entry in pool.items() if entry.chunk is None and h not in indexed]
    if not leaving or len(leaving) > RETIRE_DOCUMENTS:
        return
    vectors = np.concatenate([np.asarray(old.vectors[e.first:e.first + e.count], dtype=np.float32)
                              for _, e in leaving])
    store.chunks_dir.mkdir(parents=True, exist_ok=True)
    chunks.write_chunk(store.chunks_dir, model=model, scheme=scheme, source="retired", start=0,
                       hashes=[h for h, _ in leaving], counts=[e.count for _, e in leaving],
                       vectors=vectors)
    retired = sorted((path for path in chunks.chunk_files(store.chunks_dir)
                      if (info := chunks.read_chunk_info(path)) and info.source == "retired"),
                     key=lambda path: path.stat().st_mtime)
    for path in retired[:-RETIRED_CHUNKS]:
        path.unlink(missing_ok=True)


def _per_document(progress: Callable[[int], None] | None, sizes: list[int]):
    """Turn the encoder's progress in passages into progress in documents."""
    if progress is None:
        return None
    bounds = np.cumsum(sizes)
    state = {"passages": 0, "documents": 0}

    def advance(count: int) -> None:
        state["passages"] += count
        done = int(np.searchsorted(bounds, state["passages"], side="right"))
        if done > state["documents"]:
            progress(done - state["documents"])
            state["documents"] = done

    return advance


def _versions() -> dict[str, str]:
    found = {"paperscope": __version__}
    for package in ("faiss-cpu", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found
