"""One index and the documents it is built from: the catalogue's, a named corpus's or a BEIR
corpus's. Every front door (the CLI, the web server, the MCP server, `eval`) builds, updates
and searches an index through a `Collection`:

    from paperscope.library import open_collection
    collection = open_collection(corpus="arxiv-cl")     # or library=…, or beir=Path(…)
    collection.build(progress=print)
    for hit in collection.search("speculative decoding", k=5).hits:
        print(hit.rank, hit.document.title)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import IndexMissingError, PaperscopeError, UnknownEntryError, UsageError, storage_error
from .index import IndexStore, OpenIndex, documents_digest
from .indexer import BuildReport, Embedder, build_index
from .records import Document, Hit
from .search import WEAK_SCORE, Searcher, check_query
from .settings import configured_model, settings_change

if TYPE_CHECKING:  # NumPy and the encoders load only when an index is opened or built
    import numpy as np

    from .embedding import Encoder


# A catalogue without an index (just made by `init`, or cloned without index/) gets one built
# by its first search up to this many entries; beyond, the search names `paperscope build`.
FIRST_BUILD_LIMIT = 1000


@dataclass(frozen=True)
class Filters:
    """Narrow the candidates before ranking (every given condition must hold)."""

    sections: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    tags: tuple[str, ...] = ()  # any of them, compared without case

    def __post_init__(self) -> None:
        if self.year_from is not None and self.year_to is not None and self.year_from > self.year_to:
            raise UsageError(f"--year-from {self.year_from} is after --year-to {self.year_to}: "
                             "nothing could match.")

    def mask(self, index: OpenIndex) -> np.ndarray | None:
        """Which documents of `index` pass (None when there is no condition), read from the
        per-document facets and tags the build wrote; an unknown tag is a UsageError."""
        import numpy as np

        if not (self.sections or self.kinds or self.year_from or self.year_to or self.tags):
            return None
        facets = np.asarray(index.facets)
        manifest = index.manifest
        keep = np.ones(index.count, dtype=bool)
        if self.sections:
            check_facet(self.sections, manifest.sections, "section", casefold=True)
            wanted = {s.casefold() for s in self.sections}
            codes = [i for i, name in enumerate(manifest.sections) if name.casefold() in wanted]
            keep &= np.isin(facets[:, 1], codes)
        if self.kinds:
            check_facet(self.kinds, manifest.kinds, "kind")
            codes = [i for i, name in enumerate(manifest.kinds) if name in self.kinds]
            keep &= np.isin(facets[:, 2], codes)
        years = facets[:, 0]
        if self.year_from is not None:
            keep &= (years > 0) & (years >= self.year_from)
        if self.year_to is not None:
            keep &= (years > 0) & (years <= self.year_to)
        if self.tags:
            check_tags(self.tags, manifest.tags)
            tagged = np.zeros(index.count, dtype=bool)
            tagged[index.tagged(self.tags)] = True
            keep &= tagged
        return keep


def check_facet(wanted: Sequence[str], known: Sequence[str], what: str, casefold: bool = False) -> None:
    """A UsageError naming the valid values when a section or kind is not in the index."""
    fold = (lambda text: text.casefold()) if casefold else (lambda text: text)
    names = {fold(name) for name in known}
    unknown = [value for value in wanted if fold(value) not in names]
    if unknown:
        raise UsageError(f"No {what} {', '.join(map(repr, unknown))}.",
                         f"{what.capitalize()}s: {', '.join(known)}" if known else
                         f"This index has no {what}s.")


def check_tags(wanted: Sequence[str], known: Sequence[str]) -> None:
    """A UsageError naming the known tags when one of `wanted` is not among them."""
    unknown = [tag for tag in wanted if tag.casefold() not in known]
    if unknown:
        raise UsageError(f"No entry is tagged {', '.join(map(repr, unknown))}.",
                         f"Tags: {', '.join(known)}" if known else
                         "No entry has tags yet: add them with `paperscope edit ID` or `add --tag`.")


def check_k(k: int, min_score: float = 0.0) -> None:
    """UsageError for a k under 1 or a minimum score outside 0 to 1."""
    if k < 1:
        raise UsageError(f"-k must be at least 1 (got {k}).")
    if not 0.0 <= min_score <= 1.0:
        raise UsageError(f"--min-score must be between 0 and 1 (got {min_score:g}).")


@dataclass
class SearchOutcome:
    """Ranked hits, and notices about the index the caller should see (on stderr)."""

    hits: list[Hit]
    notices: list[str] = field(default_factory=list)


def _weak_and_filtered(hits: list[Hit], notices: list[str], min_score: float, what: str) -> SearchOutcome:
    """A notice when even the best hit is a weak match (search.WEAK_SCORE); the hits scoring
    `min_score` or more, in their ranking's order (ranks kept)."""
    if hits and max(hit.score for hit in hits) < WEAK_SCORE:
        notices.append(f"{what}: the best hit scores {max(hit.score for hit in hits):.2f} "
                       f"(under {WEAK_SCORE:.2f}, the score of a weak match).")
    kept = [hit for hit in hits if hit.score >= min_score]
    if hits and not kept:
        notices.append(f"No hit scores {min_score:g} or more.")
    return SearchOutcome(kept, notices)


class Collection:
    """An index folder and the documents it indexes.

    `documents()` gives the documents the index should hold (the catalogue's entries with text,
    a corpus's imported papers, a BEIR file's records); `build` brings the index up to date with
    them, embedding only what changed and resuming an interrupted build from its chunks.
    `model` fixes the one model queries may be encoded with (a catalogue's configured model;
    None: the model the index names). With `auto_update`, opening the index first brings it up
    to date where that needs no network and no re-embedding of everything (the catalogue)."""

    def __init__(self, store: IndexStore, documents: Callable[[], Sequence[Document]] | None, *,
                 name: str, encoder: Encoder | None = None, model: str | None = None,
                 scheme: str | None = None, source: str = "", missing_message: str = "",
                 missing_hint: str = "", auto_update: bool = False):
        self.store = store
        self.name = name
        self.encoder = encoder
        self.model = model
        self.scheme = scheme
        self.source = source
        self.missing_message = missing_message
        self.missing_hint = missing_hint
        self.auto_update = auto_update
        self._documents = documents
        self._index: OpenIndex | None = None
        self._searcher: Searcher | None = None  # of the last index searched, with its query encoder

    def documents(self) -> Sequence[Document]:
        """The documents the index should hold, in order (an index folder opened on its own
        has none to build from)."""
        if self._documents is None:
            raise UsageError(f"{self.name} is an index folder without its documents: nothing to "
                             "build it from.", self.missing_hint or None)
        return self._documents()

    def build_model(self, model: str | None = None) -> str:
        """The model a build embeds with: `model`, else the collection's, else the configured one."""
        return model or self.model or (self.encoder.model_name if self.encoder else configured_model())

    def build(self, *, full: bool = False, model: str | None = None, search: str = "auto",
              scheme: str | None = None, progress: Callable[[int], None] | None = None,
              on_encoder: Callable[[str, int, str], None] | None = None,
              wait: bool = True, on_wait: Callable[[], None] | None = None,
              embedder: Embedder | None = None) -> BuildReport:
        """Embed what is not embedded yet and commit the index (see indexer.build_index);
        `embedder` embeds elsewhere (distributed.ray_embedder), by default this process does."""
        with self.store.write_lock(wait=wait, on_wait=on_wait):
            documents = self.documents()  # read under the lock: what the build commits is current
            try:
                report = build_index(self.store, documents, model=self.build_model(model),
                                     full=full, encoder=self.encoder, scheme=scheme or self.scheme,
                                     search=search, source=self.source, progress=progress,
                                     on_encoder=on_encoder, embedder=embedder)
            finally:
                close = getattr(documents, "close", None)
                if close is not None:
                    close()
        self.close()
        return report

    def open(self) -> OpenIndex:
        """The index as built, opened once; a missing one names the command that builds it."""
        if self._index is None:
            try:
                self._index = self.store.open()
            except IndexMissingError as err:
                if self.store.manifest_path.exists():  # a file of a built index is missing
                    raise
                raise IndexMissingError(self.missing_message or err.message,
                                        self.missing_hint or err.hint) from None
        return self._index

    def index(self, *, update: bool = True) -> tuple[OpenIndex, list[str]]:
        """The index, brought up to date with the documents first when `auto_update` and
        `update` allow (never by embedding everything again); and notices about what is stale."""
        notices: list[str] = []
        if self.auto_update and update and self._index is None:
            try:
                self.open()
            except IndexMissingError:
                if self.store.read_manifest() is not None:  # a file of a built index is gone
                    raise
                notices.append(self._first_build())
        index = self.open()
        if not self.auto_update:
            return index, notices
        documents = self.documents()
        if update and not documents and index.count:
            notices.append("The catalogue has no entries with text; searching the last build. "
                           "Run `paperscope build` if the index should be emptied too.")
        elif documents_digest(documents) != index.manifest.documents_digest:
            reason = settings_change(index.manifest, self.build_model(), self.scheme or "")
            if update and reason:  # a search never embeds the whole library on the side
                notices.append(f"The index is out of date with the catalogue, and {reason}: run "
                               "`paperscope build` (it embeds every entry again). Searching the last build.")
            elif update:
                try:
                    report = self.build(wait=False)
                    index = self.open()
                    changed = report.embedded + report.removed
                    notices.append("The catalogue changed since the last build; the index was "
                                   f"updated ({len(report.embedded)} embedded, "
                                   f"{len(report.removed)} removed"
                                   + (f": {', '.join(changed[:8])}" if changed else "") + ").")
                except (PaperscopeError, OSError, sqlite3.Error) as caught:
                    err = caught if isinstance(caught, PaperscopeError) else storage_error(caught)
                    notices.append(f"The index is out of date and could not be updated now "
                                   f"({err.message}); searching the last build.")
            else:
                notices.append("The index is out of date with the catalogue; run: paperscope build")
        return index, notices

    def _first_build(self) -> str:
        """Build a missing index on the way, as a search updates a stale one: for a reading
        list (up to FIRST_BUILD_LIMIT documents), never a large corpus on the side."""
        count = len(self.documents())
        if not count:
            raise IndexMissingError(f"No index in {self.store.directory}, and nothing to build it "
                                    "from: the catalogue has no entries yet.",
                                    "Add one with: paperscope add ARXIV_ID_OR_URL")
        if count > FIRST_BUILD_LIMIT:
            raise IndexMissingError(f"No index in {self.store.directory} yet; a search builds one "
                                    f"on the way for up to {FIRST_BUILD_LIMIT:,} entries, and this "
                                    f"catalogue has {count:,}.", self.missing_hint or None)
        report = self.build(wait=False)
        return f"There was no index yet: built it now ({len(report.embedded)} embedded)."

    def pinned(self, encoder: Encoder | None = None) -> Collection:
        """This collection's index as it is now, never updated: a server answers a whole
        generation from one index (`encoder`: the query encoder to use instead)."""
        pinned = Collection(self.store, self._documents, name=self.name,
                            encoder=encoder or self.encoder, model=self.model, scheme=self.scheme,
                            source=self.source, missing_message=self.missing_message,
                            missing_hint=self.missing_hint)
        pinned._index = self.open()
        return pinned

    def searcher(self, index: OpenIndex | None = None) -> Searcher:
        """The ranker over the index (opened as built unless given); the same one while the
        index is, so that its query encoder loads once (tens of ms a search otherwise)."""
        index = index or self.open()
        if self._searcher is None or self._searcher.index is not index:
            self._searcher = Searcher(index, self.encoder, self.model)
        return self._searcher

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid",
               filters: Filters | None = None, update: bool = True,
               notices: Sequence[str] = (), min_score: float = 0.0) -> SearchOutcome:
        """The `k` documents that best answer `query` (those scoring `min_score` or more)."""
        query = check_query(query)
        check_k(k, min_score)
        index, found = self.index(update=update)
        allowed = (filters or Filters()).mask(index)
        terms = index.lexical.tokenize(query)
        hits = self.searcher(index).search(query, k=k, mode=mode, allowed=allowed, query_terms=terms)
        notes = [*found, *notices]
        if mode == "hybrid" and hits and not index.lexical.knows_any(terms):
            notes.append("No word of the query occurs in any document: these are ranked by meaning "
                         "alone, and the first may not be close.")
        return _weak_and_filtered(hits, notes, min_score, "No close match")

    def related(self, doc_id: str, *, k: int = 5, mode: str = "hybrid",
                filters: Filters | None = None, update: bool = True,
                notices: Sequence[str] = (), missing: str = "",
                min_score: float = 0.0) -> SearchOutcome:
        """The `k` documents closest to the one with id `doc_id`, itself excluded (those scoring
        `min_score` or more); `missing` is the message when that document is not in the index."""
        check_k(k, min_score)
        index, found = self.index(update=update)
        position = index.position(doc_id)
        if position is None:
            if missing:
                raise UsageError(missing, "Fetch it with: paperscope ingest")
            raise UnknownEntryError(f"No document with id {doc_id!r} in this index.",
                                    "A corpus's papers go by their arXiv ids: find them with "
                                    "paperscope search QUESTION --corpus NAME")
        allowed = (filters or Filters()).mask(index)
        return _weak_and_filtered(self.searcher(index).related(position, k=k, mode=mode, allowed=allowed),
                                  [*found, *notices], min_score, "No close entry")

    def close(self) -> None:
        """Close the opened index (the next call opens the index as it is then)."""
        if self._index is not None:
            self._index.close()
            self._index = None
