"""One library held open for a long-running server, reloaded whole when it changes on disk.

A `Generation` is everything one answer reads: the catalogue, the record cache, the opened
index and the citation keys, all read together. `Resident.current()` compares the stat
signature of manifest.json, catalogue.yaml and records.json (three `stat` calls) with the
generation it holds; when one changed it opens the new generation fully and then replaces one
reference, so a request that took the old generation finishes on it and no answer mixes two.

A process runs at most `searches_at_once` searches (search and related) at a time, the others
wait their turn: half of a search is Python, which runs one thread at a time anyway, and
twenty side by side would each finish later than in turn. `serve` allows as many as there
are cores for each of its processes (`serve --workers`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bibtex import bibtex_entry, citation_keys
from ..collection import Collection, Filters, SearchOutcome
from ..errors import CatalogueError, PaperscopeError, UnknownEntryError, UsageError
from ..files import file_signature
from ..ingest import entry_json
from ..library import (  # MAX_QUERY_CHARS: the one limit on a query, for every door
    MAX_QUERY_CHARS,
    Corpus,
    Library,
    discovery_since,
    find_papers,
    list_corpora,
)
from ..records import Entry, PaperRecord
from ..render import latex_as_text

if TYPE_CHECKING:
    from ..discover import Discovery
    from ..embedding import Encoder
    from ..index import OpenIndex

log = logging.getLogger(__name__)

MAX_K = 50  # results a request may ask for


def input_problems(errors: Iterable[Mapping[str, Any]]) -> str:
    """pydantic's validation errors as paperscope states them, for the JSON API and MCP alike:
    "k: Input should be less than or equal to 50" (the field and the short message: neither the
    input echoed back nor pydantic's link to its documentation)."""
    problems = []
    for problem in errors:
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("query", "path"))
        message = str(problem.get("msg") or "Invalid value")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems) or "Invalid request."


class CachedEncoder:
    """An encoder that remembers the vectors of recent single queries (a search box asks the
    same ones again: a result page, then the API, then the next visitor). Vectors depend on the
    model alone, so the cache outlives index generations built with the same model."""

    def __init__(self, encoder: Encoder, size: int = 2048):
        self.inner = encoder
        self.model_name = encoder.model_name
        self.dimension = encoder.dimension
        self.size = size
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], progress=None):
        if len(texts) != 1:
            return self.inner.encode(texts, progress)
        text = texts[0]
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                return vector[None]
        vector = self.inner.encode([text])[0]
        vector.setflags(write=False)
        with self._lock:
            self._cache[text] = vector
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vector[None]


def _signature(paths: Sequence[Path]) -> tuple:
    return tuple(file_signature(path) for path in paths)


@dataclass
class Generation:
    """One consistent view of the library: every answer reads a single generation."""

    number: int
    signature: tuple
    library: Library
    collection: Collection | None  # the library's index as this generation opened it
    notices: list[str]
    problem: PaperscopeError | None  # why there is no index (served as 503 by search)
    records: dict[str, PaperRecord]
    searching: threading.Semaphore  # the Resident's (see the module's docstring)
    keys: dict[str, str] = field(default_factory=dict)  # entry id -> citation key
    built_at: str | None = None  # when this generation's index was committed
    _map: list | None = None

    @property
    def catalogue(self):
        return self.library.catalogue

    @property
    def index(self) -> OpenIndex | None:
        return self.collection.open() if self.collection is not None else None

    def describe(self) -> dict[str, Any]:
        manifest = self.index.manifest if self.index is not None else None
        return {"generation": self.number, "built_at": self.built_at,
                "documents_digest": manifest.documents_digest[:16] or None if manifest else None,
                "count": manifest.count if manifest else None,
                "model": manifest.model if manifest else None}

    def require_collection(self) -> Collection:
        if self.collection is None:
            raise self.problem or UsageError("The library has no index.")
        return self.collection

    def require_index(self) -> OpenIndex:
        return self.require_collection().open()

    # -- answers ------------------------------------------------------------------

    def entry(self, key: str) -> Entry:
        return self.library.entry(key)

    def record(self, entry: Entry) -> PaperRecord | None:
        return self.records.get(entry.record_key) if entry.record_key else None

    def entry_json(self, key: str) -> dict[str, Any]:
        entry = self.entry(key)
        return entry_json(entry, self.record(entry))

    def entries_json(self, *, section: str | None = None, tags: Sequence[str] = ()) -> list[dict]:
        return [entry_json(e, self.record(e)) for e in self.library.entries(section=section, tags=tags)]

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid",
               filters: Filters | None = None, min_score: float = 0.0) -> SearchOutcome:
        _check_bounds(query=query, k=k)
        with self.searching:
            return self.require_collection().search(query, k=k, mode=mode, filters=filters,
                                                    notices=self.notices, min_score=min_score)

    def related(self, key: str, *, k: int = 5, mode: str = "hybrid",
                filters: Filters | None = None, min_score: float = 0.0) -> SearchOutcome:
        _check_bounds(k=k)
        entry = self.entry(key)
        with self.searching:
            return self.require_collection().related(
                entry.id, k=k, mode=mode, filters=filters, notices=self.notices,
                missing=f"The entry {entry.id!r} is not in the index yet (it has no abstract).",
                min_score=min_score)

    def bibtex(self, key: str) -> tuple[Entry, str, str]:
        """(entry, citation key, BibTeX text), as `paperscope cite` prints it."""
        entry = self.entry(key)
        return entry, self.keys[entry.id], bibtex_entry(entry, self.record(entry), self.keys[entry.id])

    def highlight(self, text: str, query: str) -> list[tuple[int, int]]:
        """[start, end) code-point spans of the words of `text` that share a search term with
        `query` (stemmed as the index stems them)."""
        if not query or not text:
            return []
        tokenize = self._tokenizer()
        wanted = set(tokenize(query))
        if not wanted:
            return []
        return [(m.start(), m.end()) for m in re.finditer(r"\w[\w-]*", text)
                if tokenize.term_set(m.group()) & wanted]

    def map_points(self) -> list[dict[str, Any]]:
        """Every indexed entry placed in 2-D by similarity: the first two principal components
        of the document vectors, scaled to [0, 1]; computed once per generation."""
        if self._map is None:
            import numpy as np

            index = self.require_index()
            documents = list(index.all_documents())
            if not documents:
                self._map = []
                return self._map
            vectors = np.stack([index.document_vector(i) for i in range(index.count)]).astype(np.float64)
            centred = vectors - vectors.mean(axis=0)
            _, _, axes = np.linalg.svd(centred, full_matrices=False)
            xy = centred @ axes[:2].T if len(axes) >= 2 else np.zeros((len(documents), 2))
            low, high = xy.min(axis=0), xy.max(axis=0)
            xy = (xy - low) / np.where(high > low, high - low, 1.0)
            self._map = [{"id": d.id, "title": latex_as_text(d.title), "section": d.meta.get("section"),
                          "x": round(float(x), 4), "y": round(float(y), 4)}
                         for d, (x, y) in zip(documents, xy, strict=True)]
        return self._map

    def _tokenizer(self):
        if self.index is not None:
            return self.index.lexical.tokenize
        from ..lexical import Tokenizer, default_stopwords

        return Tokenizer(default_stopwords())


@dataclass
class CorpusView:
    """One corpus as a server answers from it: its index opened whole, swapped for a new view
    when a build or an update commits another (see `Resident.corpus`)."""

    corpus: Corpus
    signature: tuple
    collection: Collection
    searching: threading.Semaphore  # the Resident's (see the module's docstring)
    built_at: str | None = None

    @property
    def name(self) -> str:
        return self.corpus.name

    def describe(self) -> dict[str, Any]:
        manifest = self.collection.open().manifest
        return {"corpus": self.name, "built_at": self.built_at,
                "documents_digest": manifest.documents_digest[:16] or None,
                "count": manifest.count, "model": manifest.model}

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid",
               filters: Filters | None = None, min_score: float = 0.0) -> SearchOutcome:
        _check_bounds(query=query, k=k)
        with self.searching:
            return self.collection.search(query, k=k, mode=mode, filters=filters, min_score=min_score)

    def related(self, paper_id: str, *, k: int = 5, mode: str = "hybrid",
                filters: Filters | None = None, min_score: float = 0.0) -> SearchOutcome:
        """The corpus's papers closest to one of its papers (by arXiv id)."""
        _check_bounds(k=k)
        paper_id = paper_id.strip()
        if self.collection.open().position(paper_id) is None:
            raise UnknownEntryError(f"No paper {paper_id!r} in the corpus {self.name!r}.",
                                    "A corpus's papers go by their arXiv ids: find them by searching it.")
        with self.searching:
            return self.collection.related(paper_id, k=k, mode=mode, filters=filters, min_score=min_score)


def _check_bounds(*, query: str | None = None, k: int | None = None) -> None:
    if query is not None and len(query) > MAX_QUERY_CHARS:
        raise UsageError(f"The query is {len(query)} characters long; the most is {MAX_QUERY_CHARS}.")
    if k is not None and not 1 <= k <= MAX_K:
        raise UsageError(f"k must be between 1 and {MAX_K} (got {k}).")


class Resident:
    """The library at `path`, held open; `current()` is the generation to answer from."""

    def __init__(self, path: str | Path | None = None, encoder: Encoder | None = None,
                 searches_at_once: int | None = None):
        """`searches_at_once`: see the module's docstring (default: the machine's cores)."""
        probe = Library.open(path, encoder=encoder)
        self.paths = probe.paths
        self.root = probe.paths.root
        self._encoder = encoder
        self._encoders: dict[str, Encoder] = {}
        self._watched = (probe.store.manifest_path, probe.paths.catalogue, probe.store.records_path)
        self._lock = threading.Lock()
        self._searching = threading.Semaphore(searches_at_once or os.cpu_count() or 1)
        self._count = 0
        self._generation: Generation | None = None
        self._corpora: dict[str, CorpusView] = {}
        self.current()

    def corpus_names(self) -> list[str]:
        """The corpora there are now (`paperscope corpus list`), for a picker."""
        return list_corpora()

    def corpus(self, name: str) -> CorpusView:
        """The corpus `name` as last committed: reopened whole, like the catalogue's index, when
        its manifest changed (a build or an update committed), so that no answer reads a
        half-written index. An unknown name is an UnknownEntryError naming the known ones."""
        try:
            corpus = Corpus.open(name, self._encoder)
        except UnknownEntryError:
            self._corpora.pop(name, None)  # removed: its index is no longer held
            raise
        view = self._corpora.get(corpus.name)
        watched = (corpus.store.manifest_path,)
        if view is not None and view.signature == _signature(watched):
            return view
        with self._lock:
            view = self._corpora.get(corpus.name)
            signature = _signature(watched)
            if view is not None and view.signature == signature:
                return view
            for attempt in range(5):
                index = corpus.collection.open()
                pinned = corpus.collection.pinned(self._encoder_for(index, index.model_name))
                after = _signature(watched)
                if after == signature or attempt == 4:
                    break
                signature = after  # a build committed while we read: read again
                corpus.collection.close()
            fresh = CorpusView(corpus, after, pinned, self._searching, built_at=corpus.store.built_at())
            with contextlib.suppress(PaperscopeError):  # the first real query finds it paged in
                fresh.search("warm up", k=1)
            if view is not None:
                log.info("the corpus %s changed on disk: now serving its new index", corpus.name)
            self._corpora[corpus.name] = fresh  # the swap: one reference
            return fresh

    def discover(self, corpus: str, *, since: str | None = None, new: bool = False,
                 k: int = 20, entries: Sequence[str] = ()) -> tuple[list[Discovery], str | None]:
        """Papers of `corpus` near the catalogue's `entries` (all when empty) and not in it, first
        posted since `since`, or since the corpus's last update with `new`; and that day."""
        _check_bounds(k=k)
        view = self.corpus(corpus)
        day = discovery_since(view.corpus, since, new)
        generation = self.current()
        catalogue = generation.catalogue
        chosen = [generation.entry(key) for key in entries] or list(catalogue.entries)
        found = find_papers(generation.require_index(), view.collection.open(), chosen,
                            known=catalogue.entries, k=k, since=day)
        return found, day

    def current(self) -> Generation:
        """The newest complete generation: reopened when a watched file changed."""
        generation = self._generation
        signature = _signature(self._watched)
        if generation is not None and generation.signature == signature:
            return generation
        with self._lock:  # one thread opens the new generation; the others wait for it
            generation = self._generation
            signature = _signature(self._watched)
            if generation is not None and generation.signature == signature:
                return generation
            fresh = self._open(signature)
            if generation is not None:
                log.info("the library changed on disk: now serving generation %d", fresh.number)
            self._generation = fresh  # the swap: one reference
            return fresh

    def _open(self, signature: tuple) -> Generation:
        """Read everything one generation needs; retried when a build commits meanwhile."""
        for attempt in range(5):
            library = Library(self.paths, encoder=self._encoder)
            collection, problem = None, None
            notices: list[str] = []
            try:
                catalogue = library.catalogue
                records = library.records()
                index, notices = library.index(update=False)  # a server never writes the index
                collection = library.collection.pinned(self._encoder_for(index, library.model))
            except PaperscopeError as err:
                if isinstance(err, CatalogueError) and self._generation is not None:
                    # a half-edited catalogue: keep answering from the last good one
                    log.warning("catalogue.yaml cannot be read (%s); serving the last good one", err)
                    return self._generation
                library.collection.close()
                problem = err
                catalogue = None
                records = {}
            after = _signature(self._watched)
            if after == signature or attempt == 4:
                self._count += 1
                generation = Generation(self._count, after, library, collection, notices, problem,
                                        records, self._searching, built_at=library.store.built_at())
                if catalogue is not None:
                    generation.keys = citation_keys(catalogue.entries, records)
                    if collection is not None:
                        self._warm(generation)
                return generation
            signature = after  # changed while we read: read again
            library.collection.close()
        raise AssertionError("unreachable")

    def _encoder_for(self, index: OpenIndex, model: str) -> Encoder | None:
        """One query encoder per model, kept across generations (tests pass a fake one); only
        the library's `model` is loaded (see `Searcher`)."""
        encoder = self._encoders.get(index.model_name)
        if encoder is None:
            if self._encoder is not None:
                inner = self._encoder
            else:
                from ..search import Searcher

                inner = Searcher(index, model=model, resident=True).encoder  # loads it, checks its dimension
            encoder = self._encoders[index.model_name] = CachedEncoder(inner)
        return encoder

    @staticmethod
    def _warm(generation: Generation) -> None:
        """Answer one query so the first real one finds everything loaded and paged in."""
        with contextlib.suppress(PaperscopeError):
            generation.search("warm up", k=1)
