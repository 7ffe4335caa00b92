"""The Library facade: one catalogue, its record cache and its index.

    from paperscope import Library
    library = Library.open()              # the library around the current folder
    for hit in library.search("parameter-efficient finetuning", k=3).hits:
        print(hit.rank, hit.document.title)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .catalogue import Catalogue, normalise_arxiv_id, parse_catalogue
from .errors import PaperscopeError, UnknownEntryError, UsageError
from .ingest import IngestReport, catalogue_documents, ingest
from .records import Document, Entry, Hit, PaperRecord
from .index import IndexStore
from .store import LibraryPaths, find_library, read_text

if TYPE_CHECKING:  # numpy, FAISS and the encoders load only when a command needs them
    import numpy as np

    from .embedding import Encoder
    from .index import OpenIndex
    from .indexer import BuildReport


@dataclass(frozen=True)
class Filters:
    """Narrow the candidates before ranking (every given condition must hold)."""

    sections: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None

    def mask(self, index: OpenIndex) -> np.ndarray | None:
        """Which documents of `index` pass (None when there is no condition), read from the
        per-document facets the build wrote."""
        import numpy as np

        if not (self.sections or self.kinds or self.year_from or self.year_to):
            return None
        facets = np.asarray(index.facets)
        names = index.manifest.get("facets") or {}
        keep = np.ones(index.count, dtype=bool)
        if self.sections:
            wanted = {s.casefold() for s in self.sections}
            codes = [i for i, name in enumerate(names.get("sections", [])) if name.casefold() in wanted]
            keep &= np.isin(facets[:, 1], codes)
        if self.kinds:
            codes = [i for i, name in enumerate(names.get("kinds", [])) if name in self.kinds]
            keep &= np.isin(facets[:, 2], codes)
        years = facets[:, 0]
        if self.year_from is not None:
            keep &= (years > 0) & (years >= self.year_from)
        if self.year_to is not None:
            keep &= (years > 0) & (years <= self.year_to)
        return keep


@dataclass
class SearchOutcome:
    """Ranked hits, and notices about the index the caller should see (on stderr)."""

    hits: list[Hit]
    notices: list[str] = field(default_factory=list)


@dataclass
class AddResult:
    """The entry `add` wrote (or found already there), and the rebuild it ran."""

    entry: Entry
    already: bool
    build: BuildReport | None = None


class Library:
    """A reading list: catalogue.yaml plus the index/ folder beside it."""

    def __init__(self, paths: LibraryPaths, encoder: Encoder | None = None):
        self.paths = paths
        self.store = IndexStore(paths.index_dir)
        self.encoder = encoder  # None: the configured model, loaded when first needed
        self._catalogue: Catalogue | None = None

    @classmethod
    def open(cls, path: str | Path | None = None, encoder: Encoder | None = None) -> Library:
        """The library at `path` (a folder with catalogue.yaml), else around the current folder.
        `encoder` replaces the configured model (tests pass a fake one)."""
        return cls(find_library(Path(path) if path else None), encoder)

    # -- the catalogue ------------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            path = self.paths.catalogue
            self._catalogue = parse_catalogue(read_text(path, "Catalogue"), path)
        return self._catalogue

    def records(self) -> dict[str, PaperRecord]:
        return self.store.read_records()

    def entry(self, key: str) -> Entry:
        """The entry with this id (or arXiv id); an unknown one suggests the closest ids."""
        catalogue = self.catalogue
        found = catalogue.get(key.strip())
        if found is None and normalise_arxiv_id(key):
            found = catalogue.by_arxiv_id().get(normalise_arxiv_id(key))
        if found is None:
            ids = [entry.id for entry in catalogue.entries]
            close = difflib.get_close_matches(key.strip().lower(), ids, n=3, cutoff=0.4)
            close += [e.id for e in catalogue.entries
                      if key.strip().lower() in e.title.lower() and e.id not in close][:3]
            hint = f"Did you mean: {', '.join(close)}?" if close else \
                "See the ids with: paperscope list"
            raise UnknownEntryError(f"No entry with id {key!r}.", hint)
        return found

    def documents(self) -> tuple[list[Document], list[Entry]]:
        """(documents of every entry with text, entries still missing an abstract)."""
        return catalogue_documents(self.catalogue, self.records())

    # -- writing ------------------------------------------------------------------

    def ingest(self, *, snapshot: Path | None = None, refresh: bool = False, source=None,
               progress: Callable[[int], None] | None = None,
               on_plan: Callable[[int, str], None] | None = None,
               wait: bool = True, on_wait: Callable[[], None] | None = None) -> IngestReport:
        """Fetch the metadata of arXiv entries not in the record cache (all with `refresh`)."""
        with self.store.write_lock(wait=wait, on_wait=on_wait):
            return ingest(self.catalogue, self.store, source=source, snapshot=snapshot,
                          refresh=refresh, progress=progress, on_plan=on_plan)

    def build(self, *, full: bool = False, model: str | None = None,
              progress: Callable[[int], None] | None = None,
              on_encoder: Callable[[str, int, str], None] | None = None,
              wait: bool = True, on_wait: Callable[[], None] | None = None
              ) -> tuple[BuildReport, list[Entry]]:
        """Bring the index up to date with the catalogue; returns the report and the
        entries left out because they still have no text."""
        from .indexer import build_index
        from .text import DEFAULT_SCHEME

        with self.store.write_lock(wait=wait, on_wait=on_wait):
            documents, missing = self.documents()
            report = build_index(self.store, documents, model=model or self._model(),
                                 full=full, progress=progress, on_encoder=on_encoder,
                                 encoder=self.encoder, scheme=DEFAULT_SCHEME)
        return report, missing

    def add(self, source: str, *, section: str | None = None, summary: str | None = None,
            title: str | None = None, kind: str | None = None, entry_id: str | None = None,
            snapshot: Path | None = None, corpus: str | None = None, api=None, build: bool = True,
            on_encoder: Callable[[str, int, str], None] | None = None) -> AddResult:
        """Append a paper (arXiv id or URL) or another link to the catalogue, keeping the
        file's comments and layout, then rebuild the index incrementally. While arXiv cannot
        be reached, an arXiv id given with `title` and `summary` is added without its record."""
        from .catalogue import URL_PATTERN, insert_entry, slug
        from .errors import FetchError
        from .store import atomic_write_text

        catalogue = self.catalogue
        arxiv_id = normalise_arxiv_id(source)
        existing = (catalogue.by_arxiv_id().get(arxiv_id) if arxiv_id else
                    next((e for e in catalogue.entries if e.url == source.strip()), None))
        if existing is not None:
            return AddResult(existing, already=True)
        record, unreachable = None, False
        if arxiv_id:
            if corpus is not None:
                from .corpora import Corpus, document_record

                found = Corpus.open(corpus).store.open()
                position = found.position(arxiv_id)
                record = None if position is None else \
                    document_record(found.document(position), f"corpus:{corpus}")
                failure = f"not in the corpus {corpus}"
            elif snapshot is not None:
                from .sources.snapshot import read_snapshot

                record = read_snapshot(snapshot, [arxiv_id]).get(arxiv_id)
                failure = f"not in the snapshot {snapshot.name}"
            else:
                from .sources.arxiv_api import ArxivApiSource

                result = (api or ArxivApiSource()).fetch([arxiv_id])
                record = result.records.get(arxiv_id)
                failure = result.failures.get(arxiv_id, "no record")
                unreachable = result.unreachable is not None
            if record is None and not (unreachable and title and summary):
                hint = ("Add it offline with --from-snapshot FILE (an arXiv metadata snapshot), or with "
                        "--title and --summary (`paperscope ingest` fetches its abstract later)."
                        if unreachable else None)
                raise FetchError(f"Could not get arXiv {arxiv_id}: {failure}. Nothing was changed.",
                                 {arxiv_id: failure}, hint=hint)
        elif not URL_PATTERN.match(source.strip()):
            raise UsageError(f"{source!r} is neither an arXiv id nor an http(s) link.")
        elif not (title and summary):
            raise UsageError("An entry that is not on arXiv needs --title and --summary "
                             "(the summary is the text search reads).")
        taken = {e.id for e in catalogue.entries}
        name = title or record.title
        fields = {"id": entry_id or slug(name, taken), "title": name,
                  "url": f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else source.strip(),
                  "kind": kind or ("paper" if arxiv_id else "blog")}
        if arxiv_id:
            fields["arxiv"] = arxiv_id
        if summary:
            fields["summary"] = summary
        section = section or (catalogue.sections[-1] if catalogue.sections else "Reading list")
        text = read_text(self.paths.catalogue, "Catalogue")
        new_text = insert_entry(text, section, fields)  # raises CatalogueError if invalid
        with self.store.write_lock():
            if record is not None:
                records = self.store.read_records()
                records[arxiv_id] = record
                self.store.write_records(records)
            atomic_write_text(self.paths.catalogue, new_text)
        self._catalogue = None
        entry = self.entry(fields["id"])
        report = self.build(on_encoder=on_encoder)[0] if build else None
        return AddResult(entry, already=False, build=report)

    # -- reading ------------------------------------------------------------------

    def _model(self) -> str:
        from .settings import configured_model

        return self.encoder.model_name if self.encoder else configured_model()

    def index(self, *, update: bool = True) -> tuple[OpenIndex, list[str]]:
        """The index, brought up to date with the catalogue where that needs no network
        (when `update`); and notices about what is stale or missing."""
        from .index import documents_digest
        from .indexer import build_index
        from .settings import settings_change
        from .text import DEFAULT_SCHEME

        index = self.store.open()
        documents, missing = self.documents()
        notices = []
        if documents_digest(documents) != index.manifest.get("documents_digest"):
            reason = settings_change(index.manifest, index.model_name, DEFAULT_SCHEME)
            if update and reason:  # a search never embeds the whole library on the side
                notices.append(f"The index is out of date with the catalogue, and {reason}: run "
                               "`paperscope build` (it embeds every entry again). Searching the last build.")
            elif update:
                try:
                    with self.store.write_lock(wait=False):
                        report = build_index(self.store, documents, model=index.model_name,
                                             encoder=self.encoder, scheme=DEFAULT_SCHEME)
                    index.close()
                    index = self.store.open()
                    changed = report.embedded + report.removed
                    notices.append("The catalogue changed since the last build; the index was "
                                   f"updated ({len(report.embedded)} embedded, "
                                   f"{len(report.removed)} removed"
                                   + (f": {', '.join(changed[:8])}" if changed else "") + ").")
                except PaperscopeError as err:
                    notices.append(f"The index is out of date and could not be updated now "
                                   f"({err.message}); searching the last build.")
            else:
                notices.append("The index is out of date with the catalogue; run: paperscope build")
        if missing:
            names = ", ".join(entry.id for entry in missing[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            notices.append(f"{len(missing)} entries have no abstract yet and are not searched "
                           f"({names}{more}). Fetch them with: paperscope ingest")
        return index, notices

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid",
               filters: Filters | None = None, update: bool = True) -> SearchOutcome:
        """The `k` entries that best answer `query`."""
        from .search import check_query

        query = check_query(query)
        _check_k(k)
        index, notices = self.index(update=update)
        return search_index(index, self.encoder, query, k=k, mode=mode, filters=filters,
                            notices=notices)

    def related(self, entry_id: str, *, k: int = 5, mode: str = "hybrid",
                filters: Filters | None = None, update: bool = True) -> SearchOutcome:
        """The `k` entries closest to the entry `entry_id`, itself excluded."""
        _check_k(k)
        entry = self.entry(entry_id)
        index, notices = self.index(update=update)
        if index.position(entry.id) is None:
            raise UsageError(f"The entry {entry.id!r} is not in the index yet (it has no abstract).",
                             "Fetch it with: paperscope ingest")
        return related_in_index(index, self.encoder, entry.id, k=k, mode=mode, filters=filters,
                                notices=notices)

    def status(self, verify: bool = False) -> dict:
        """How the index compares with the catalogue, and why the next build would embed
        everything again, if it would (`rebuild_reason`). Entries without text (`missing_text`)
        make it out of date: `paperscope ingest` repairs them."""
        from .index import documents_digest
        from .settings import settings_change
        from .text import DEFAULT_SCHEME

        documents, missing = self.documents()
        manifest = self.store.read_manifest()
        problem = ""
        try:
            indexed = self.store.indexed_hashes(manifest) if manifest else {}
            if manifest and verify:
                self.store.verify()
            elif manifest:
                self.store.open().close()  # whatever `search` would refuse, status reports
        except PaperscopeError as err:
            indexed, problem = {}, err.message
        current = {d.id: d.content_hash for d in documents}
        stale = sorted(i for i in current if i in indexed and indexed[i] != current[i])
        new = sorted(i for i in current if i not in indexed)
        removed = sorted(i for i in indexed if i not in current)
        rebuild_reason = settings_change(manifest, self._model(), DEFAULT_SCHEME) if manifest else ""
        up_to_date = manifest is not None and not (stale or new or removed or rebuild_reason) \
            and manifest.get("documents_digest") == documents_digest(documents) and not problem \
            and not missing
        return {
            "library": str(self.paths.root),
            "entries": len(self.catalogue.entries),
            "arxiv_entries": sum(1 for e in self.catalogue.entries if e.arxiv_id),
            "indexed": len(indexed),
            "stale": stale,
            "new": new,
            "removed": removed,
            "missing_text": [e.id for e in missing],
            "up_to_date": up_to_date,
            "problem": problem,
            "rebuild_reason": rebuild_reason,
            "model": (manifest or {}).get("model"),
            "dimension": (manifest or {}).get("dimension"),
            "built_at": (manifest or {}).get("built_at"),
            "index_bytes": self.store.size_bytes() if manifest else 0,
        }


class Collection:
    """Search and related documents over an index that is not a catalogue's: a named corpus
    (`paperscope corpus`) or a BEIR corpus built with `build --corpus`. Same options, same
    results as `Library`."""

    def __init__(self, store: IndexStore, encoder: Encoder | None = None, *, missing_hint: str = ""):
        self.store = store
        self.encoder = encoder
        self.missing_hint = missing_hint
        self._index: OpenIndex | None = None

    def index(self) -> OpenIndex:
        from .errors import IndexMissingError

        if self._index is None:
            try:
                self._index = self.store.open()
            except IndexMissingError as err:
                raise IndexMissingError(err.message, self.missing_hint or err.hint) from None
        return self._index

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid",
               filters: Filters | None = None) -> SearchOutcome:
        from .search import check_query

        query = check_query(query)
        _check_k(k)
        return search_index(self.index(), self.encoder, query, k=k, mode=mode, filters=filters)

    def related(self, doc_id: str, *, k: int = 5, mode: str = "hybrid",
                filters: Filters | None = None) -> SearchOutcome:
        _check_k(k)
        return related_in_index(self.index(), self.encoder, doc_id, k=k, mode=mode, filters=filters)


def search_index(index: OpenIndex, encoder: Encoder | None, query: str, *, k: int, mode: str,
                 filters: Filters | None, notices: list[str] | None = None) -> SearchOutcome:
    """Rank the documents of an open index for a cleaned query."""
    from .search import Searcher

    allowed = (filters or Filters()).mask(index)
    return SearchOutcome(Searcher(index, encoder).search(query, k=k, mode=mode, allowed=allowed),
                         notices or [])


def related_in_index(index: OpenIndex, encoder: Encoder | None, doc_id: str, *, k: int, mode: str,
                     filters: Filters | None, notices: list[str] | None = None) -> SearchOutcome:
    """The documents of an open index closest to the one with id `doc_id`."""
    from .search import Searcher

    position = index.position(doc_id)
    if position is None:
        raise UnknownEntryError(f"No document with id {doc_id!r} in {index.store.directory}.")
    allowed = (filters or Filters()).mask(index)
    return SearchOutcome(Searcher(index, encoder).related(position, k=k, mode=mode, allowed=allowed),
                         notices or [])


def _check_k(k: int) -> None:
    if k < 1:
        raise UsageError(f"-k must be at least 1 (got {k}).")
