"""The Library facade: one catalogue, its record cache and its index.

    from paperscope import Library
    library = Library.open()              # the library around the current folder
    for hit in library.search("parameter-efficient finetuning", k=3).hits:
        print(hit.rank, hit.document.title)
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import difflib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalogue import Catalogue, normalise_arxiv_id, parse_catalogue
from .errors import (
    CatalogueChangedError,
    PaperscopeError,
    UnknownEntryError,
    UsageError,
    storage_error,
)
from .index import IndexStore
from .ingest import IngestReport, catalogue_documents, ingest
from .records import KINDS, Document, Entry, Hit, PaperRecord
from .store import LibraryPaths, find_library, read_text
from .text import no_abstract_yet

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
    tags: tuple[str, ...] = ()  # any of them, compared without case

    def mask(self, index: OpenIndex) -> np.ndarray | None:
        """Which documents of `index` pass (None when there is no condition), read from the
        per-document facets and tags the build wrote; an unknown tag is a UsageError."""
        import numpy as np

        if not (self.sections or self.kinds or self.year_from or self.year_to or self.tags):
            return None
        facets = np.asarray(index.facets)
        names = index.manifest.get("facets") or {}
        keep = np.ones(index.count, dtype=bool)
        if self.sections:
            _check_facet(self.sections, names.get("sections", []), "section", casefold=True)
            wanted = {s.casefold() for s in self.sections}
            codes = [i for i, name in enumerate(names.get("sections", [])) if name.casefold() in wanted]
            keep &= np.isin(facets[:, 1], codes)
        if self.kinds:
            _check_facet(self.kinds, names.get("kinds", []), "kind")
            codes = [i for i, name in enumerate(names.get("kinds", [])) if name in self.kinds]
            keep &= np.isin(facets[:, 2], codes)
        years = facets[:, 0]
        if self.year_from is not None:
            keep &= (years > 0) & (years >= self.year_from)
        if self.year_to is not None:
            keep &= (years > 0) & (years <= self.year_to)
        if self.tags:
            _check_tags(self.tags, index.tags)
            tagged = np.zeros(index.count, dtype=bool)
            tagged[index.tagged(self.tags)] = True
            keep &= tagged
        return keep


def _check_facet(wanted: Sequence[str], known: Sequence[str], what: str, casefold: bool = False) -> None:
    """A UsageError naming the valid values when a section or kind is not in the index."""
    fold = (lambda text: text.casefold()) if casefold else (lambda text: text)
    names = {fold(name) for name in known}
    unknown = [value for value in wanted if fold(value) not in names]
    if unknown:
        raise UsageError(f"No {what} {', '.join(map(repr, unknown))}.",
                         f"{what.capitalize()}s: {', '.join(known)}" if known else
                         f"This index has no {what}s.")


def _check_tags(wanted: Sequence[str], known: Sequence[str]) -> None:
    unknown = [tag for tag in wanted if tag.casefold() not in known]
    if unknown:
        raise UsageError(f"No entry is tagged {', '.join(map(repr, unknown))}.",
                         f"Tags: {', '.join(known)}" if known else
                         "No entry has tags yet: add them with `paperscope edit ID` or `add --tag`.")


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
    created_section: bool = False  # the entry's section is new


@dataclass
class EditResult:
    """The entry an editing command changed (as it is now), and the rebuild it ran."""

    entry: Entry
    changed: bool
    build: BuildReport | None = None


def _entry_fields(source: str, arxiv_id: str | None, record: PaperRecord | None, *,
                  title: str, entry_id: str, kind: str | None, authors: list[str],
                  year: int | None, tags: list[str], summary: str | None, note: str | None) -> dict:
    """The fields `add` writes for one entry, in the file's usual order."""
    fields = {"id": entry_id, "title": title,
              "url": f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else source,
              "kind": kind or ("paper" if arxiv_id else "blog"), "arxiv": arxiv_id,
              "authors": authors, "year": year, "tags": tags, "summary": summary, "note": note}
    return {key: value for key, value in fields.items() if value}


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
        if found is None and (arxiv_id := normalise_arxiv_id(key)):
            found = catalogue.by_arxiv_id().get(arxiv_id)
        if found is None:
            ids = [entry.id for entry in catalogue.entries]
            close = difflib.get_close_matches(key.strip().lower(), ids, n=3, cutoff=0.4)
            close += [e.id for e in catalogue.entries
                      if key.strip().lower() in e.title.lower() and e.id not in close][:3]
            hint = f"Did you mean: {', '.join(close)}?" if close else \
                "See the ids with: paperscope list"
            raise UnknownEntryError(f"No entry with id {key!r}.", hint)
        return found

    def entries(self, *, section: str | None = None, tags: Sequence[str] = ()) -> list[Entry]:
        """The catalogue's entries, in order: of one section (compared without case) and
        carrying any of `tags`; an unknown section or tag is a UsageError."""
        catalogue = self.catalogue
        entries = list(catalogue.entries)
        if section is not None:
            if catalogue.section_named(section) is None:
                raise UsageError(f"No section {section!r}.", f"Sections: {', '.join(catalogue.sections)}")
            entries = [e for e in entries if e.section.casefold() == section.strip().casefold()]
        if tags:
            _check_tags(tags, catalogue.tags)
            wanted = {tag.casefold() for tag in tags}
            entries = [e for e in entries if wanted & {tag.casefold() for tag in e.tags}]
        return entries

    def cite(self, ids: Sequence[str] = ()) -> str:
        """BibTeX for the entries `ids` (ids or arXiv ids; every entry when empty), with
        citation keys that stay stable as the catalogue grows."""
        from .bibtex import bibtex_entry, citation_keys

        entries = [self.entry(key) for key in ids] if ids else list(self.catalogue.entries)
        records = self.records()
        keys = citation_keys(self.catalogue.entries, records)
        return "\n".join(bibtex_entry(entry, records.get(entry.arxiv_id) if entry.arxiv_id else None,
                                      keys[entry.id]) for entry in entries)

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
            report = build_index(self.store, documents, model=model or self.model,
                                 full=full, progress=progress, on_encoder=on_encoder,
                                 encoder=self.encoder, scheme=DEFAULT_SCHEME)
        return report, missing

    def add(self, source: str, **options) -> AddResult:
        """Append a paper (arXiv id or URL) or another link to the catalogue; see `add_many`."""
        results, report = self.add_many([source], **options)
        return dataclasses.replace(results[0], build=report)

    def add_many(self, sources: Sequence[str], *, section: str | None = None,
                 summary: str | None = None, title: str | None = None, kind: str | None = None,
                 entry_id: str | None = None, authors: Sequence[str] = (), year: int | None = None,
                 tags: Sequence[str] = (), note: str | None = None, snapshot: Path | None = None,
                 corpus: str | None = None, api=None, build: bool = True,
                 on_encoder: Callable[[str, int, str], None] | None = None,
                 wait: bool = True, on_wait: Callable[[], None] | None = None
                 ) -> tuple[list[AddResult], BuildReport | None]:
        """Append papers (arXiv ids or URLs) or other links to one section of the catalogue,
        keeping the file's comments and layout, then rebuild the index incrementally. Either
        every source is added or nothing changes. While arXiv cannot be reached, one arXiv id
        given with `title` and `summary` is added without its record."""
        from .catalogue import URL_PATTERN, check_fields, insert_entry, slug

        sources = list(dict.fromkeys(s.strip() for s in sources))
        if not sources:
            raise UsageError("Name at least one arXiv id or link to add.")
        if len(sources) > 1 and (title or summary or entry_id):
            raise UsageError("--title, --summary and --id describe one entry: add the others "
                             "one at a time.")
        if kind is not None and kind not in KINDS:
            raise UsageError(f"Unknown kind {kind!r}: choose one of {', '.join(KINDS)}.")
        catalogue = self.catalogue
        arxiv_ids = {source: normalise_arxiv_id(source) for source in sources}
        for source, arxiv_id in arxiv_ids.items():
            if arxiv_id is None and not URL_PATTERN.match(source):
                raise UsageError(f"{source!r} is neither an arXiv id nor an http(s) link.")
            if arxiv_id is None and not (title and summary):
                raise UsageError("An entry that is not on arXiv needs --title and --summary "
                                 "(the summary is the text search reads).")
        new = [s for s, a in arxiv_ids.items() if self._existing(catalogue, s, a) is None]
        if new:
            self._section_for_add(catalogue, section)  # before any network
        fetch = [a for s in new if (a := arxiv_ids[s])]
        records = self._fetch_records(fetch, snapshot=snapshot, corpus=corpus, api=api,
                                      offline_ok=bool(title and summary))
        options: dict[str, Any] = {"kind": kind, "authors": list(authors), "year": year, "tags": list(tags),
                   "summary": summary, "note": note}
        results: list[AddResult] = []

        def change(text: str, current: Catalogue) -> str:
            results.clear()
            taken = {e.id for e in current.entries}
            for source, arxiv_id in arxiv_ids.items():
                existing = self._existing(current, source, arxiv_id)
                if existing is not None:
                    results.append(AddResult(existing, already=True))
                    continue
                record = records.get(arxiv_id) if arxiv_id else None
                entry_title = title or (record.title if record else None)
                assert entry_title, "_fetch_records returned a record for each id given no --title"
                target = self._section_for_add(current, section)
                fields = _entry_fields(source, arxiv_id, record, title=entry_title,
                                       entry_id=entry_id or slug(entry_title, taken), **options)
                results.append(AddResult(check_fields(fields, target), already=False,
                                         created_section=current.section_named(target) is None))
                taken.add(fields["id"])
                text = insert_entry(text, target, fields)
            return text

        with self.store.write_lock(wait=wait, on_wait=on_wait):
            edited = self._edit_catalogue(change)
            if records:
                cached = self.store.read_records()
                cached.update(records)
                self.store.write_records(cached)
        results = [dataclasses.replace(r, entry=edited.get(r.entry.id) or r.entry) for r in results]
        added = any(not r.already for r in results)
        report = self.build(on_encoder=on_encoder, wait=wait, on_wait=on_wait)[0] \
            if build and added else None
        return results, report

    @staticmethod
    def _existing(catalogue: Catalogue, source: str, arxiv_id: str | None) -> Entry | None:
        return (catalogue.by_arxiv_id().get(arxiv_id) if arxiv_id else
                next((e for e in catalogue.entries if e.url == source), None))

    @staticmethod
    def _section_for_add(catalogue: Catalogue, section: str | None) -> str:
        """The section an added entry goes to: the one named (an existing one compared without
        case, else a new one), or the only one; with several, one must be named."""
        if section is not None:
            if not section.strip():
                raise UsageError("--section must not be empty.")
            return catalogue.section_named(section) or " ".join(section.split())
        if len(catalogue.sections) > 1:
            raise UsageError("Say which section the entry goes to, with --section.",
                             f"Sections: {', '.join(catalogue.sections)}")
        return catalogue.sections[0] if catalogue.sections else "Reading list"

    def _fetch_records(self, arxiv_ids: list[str], *, snapshot: Path | None, corpus: str | None,
                       api, offline_ok: bool) -> dict[str, PaperRecord]:
        """The records of `arxiv_ids` from a corpus, a snapshot or the API; FetchError when one
        is missing (unless arXiv is unreachable and `offline_ok`)."""
        from .errors import FetchError

        if not arxiv_ids:
            return {}
        unreachable = False
        if corpus is not None:
            from .corpora import Corpus, document_record

            named = Corpus.open(corpus)
            found = {a: named.document(a) for a in arxiv_ids}
            records = {a: document_record(document, f"corpus:{corpus}")
                       for a, document in found.items() if document is not None}
            failures = {a: f"not in the corpus {corpus} (its papers: paperscope search QUERY "
                           f"--corpus {corpus}; or add it with --from-snapshot FILE)"
                        for a in arxiv_ids if a not in records}
        elif snapshot is not None:
            from .sources.snapshot import read_snapshot

            records = read_snapshot(snapshot, arxiv_ids)
            failures = {a: f"not in the snapshot {snapshot.name}" for a in arxiv_ids if a not in records}
        else:
            from .sources.arxiv_api import ArxivApiSource

            result = (api or ArxivApiSource()).fetch(arxiv_ids)
            records = dict(result.records)
            failures = {a: result.failures.get(a, "no record") for a in arxiv_ids if a not in records}
            unreachable = result.unreachable is not None
        if failures and not (unreachable and offline_ok):
            hint = ("Add it offline with --from-snapshot FILE (an arXiv metadata snapshot), or with "
                    "--title and --summary (`paperscope ingest` fetches its abstract later)."
                    if unreachable else None)
            reasons = "; ".join(f"arXiv {a}: {why}" for a, why in failures.items())
            raise FetchError(f"Could not get {reasons}. Nothing was changed.", failures, hint=hint)
        return records

    def remove(self, entry_id: str, **options) -> EditResult:
        """Delete an entry from the catalogue, then update the index."""
        from .catalogue import remove_entry

        entry = self.entry(entry_id)
        return self._edit(entry, lambda text, current: remove_entry(text, entry.id), **options)

    def move(self, entry_id: str, section: str, *, create: bool = False, **options) -> EditResult:
        """Move an entry, as written, to the end of another section (a new one with `create`)."""
        from .catalogue import move_entry

        entry = self.entry(entry_id)
        target = self.catalogue.section_named(section)
        if target is None and not create:
            raise UsageError(f"No section {section!r}.",
                             f"Sections: {', '.join(self.catalogue.sections)}. "
                             "Pass --create to make a new one.")
        if target == entry.section:
            return EditResult(entry, changed=False)
        target = target or " ".join(section.split())
        return self._edit(entry, lambda text, current: move_entry(text, entry.id, target),
                          new_id=entry.id, **options)

    def rename(self, old: str, new: str, **options) -> EditResult:
        """Give an entry another id."""
        from .catalogue import ID_PATTERN, rename_entry

        entry = self.entry(old)
        if not ID_PATTERN.match(new):
            raise UsageError(f"{new!r} is not an id: use lower-case letters, digits and dashes "
                             "(for example `lora` or `gpt-3`).")
        if new == entry.id:
            return EditResult(entry, changed=False)
        if self.catalogue.get(new) is not None:
            raise UsageError(f"The id {new!r} is already taken.")
        return self._edit(entry, lambda text, current: rename_entry(text, entry.id, new),
                          new_id=new, **options)

    def edit(self, entry_id: str, editor: Callable[[str], str],
             retry: Callable[[PaperscopeError], bool] = lambda error: False, **options) -> EditResult:
        """Let `editor` change the entry's YAML (it gets the text, returns the new text);
        invalid text is refused, or handed back to `editor` while `retry(error)` says so.
        Nothing is written when the file changed meanwhile (CatalogueChangedError)."""
        from .catalogue import CatalogueFile, entry_text, parse_entry_text, replace_entry

        entry = self.entry(entry_id)
        start = CatalogueFile.read(self.paths.catalogue)
        original = text = entry_text(start.text, entry.id)
        while True:
            text = editor(text)
            if not text.strip() or text == original:
                return EditResult(entry, changed=False)
            try:
                new_id = parse_entry_text(text, entry.section, f"entry {entry.id!r}").id
                edited = replace_entry(start.text, entry.id, text)
                break
            except PaperscopeError as error:
                if not retry(error):
                    raise
        return self._edit(entry, lambda current, catalogue: edited, new_id=new_id,
                          expected=start.digest, **options)

    def _edit(self, entry: Entry, change: Callable[[str, Catalogue], str], *,
              new_id: str | None = None, expected: str | None = None, build: bool = True,
              on_encoder: Callable[[str, int, str], None] | None = None,
              wait: bool = True, on_wait: Callable[[], None] | None = None) -> EditResult:
        with self.store.write_lock(wait=wait, on_wait=on_wait):
            edited = self._edit_catalogue(change, expected=expected, entry_id=entry.id)
        report = self.build(on_encoder=on_encoder, wait=wait, on_wait=on_wait)[0] if build else None
        current = edited.get(new_id) if new_id else entry
        assert current is not None  # _edit_catalogue wrote it under new_id
        return EditResult(current, changed=True, build=report)

    def _edit_catalogue(self, change: Callable[[str, Catalogue], str], *,
                        expected: str | None = None, entry_id: str | None = None) -> Catalogue:
        """Read catalogue.yaml, apply `change(text, catalogue)` and write the result if it
        differs; the caller holds the lock. With `expected`, the file must still have that hash."""
        from .catalogue import CatalogueFile

        self._catalogue = None
        current = CatalogueFile.read(self.paths.catalogue)
        if expected is not None and current.digest != expected:
            raise CatalogueChangedError(f"{self.paths.catalogue} changed while the entry was "
                                        "edited; nothing was written.",
                                        "Run the command again: it starts from the file as it is now.")
        catalogue = current.catalogue
        if entry_id is not None and catalogue.get(entry_id) is None:
            raise UnknownEntryError(f"The entry {entry_id!r} was removed meanwhile; nothing was written.")
        text = change(current.text, catalogue)
        if text != current.text:
            current.write(text)
            catalogue = parse_catalogue(text, self.paths.catalogue)
        self._catalogue = catalogue
        return catalogue

    # -- reading ------------------------------------------------------------------

    @property
    def model(self) -> str:
        """The embedding model of this library: the only one its queries are encoded with."""
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
        if update and not documents and index.count:
            notices.append("The catalogue has no entries with text; searching the last build. "
                           "Run `paperscope build` if the index should be emptied too.")
        elif documents_digest(documents) != index.manifest.get("documents_digest"):
            reason = settings_change(index.manifest, self.model, DEFAULT_SCHEME)
            if update and reason:  # a search never embeds the whole library on the side
                notices.append(f"The index is out of date with the catalogue, and {reason}: run "
                               "`paperscope build` (it embeds every entry again). Searching the last build.")
            elif update:
                try:
                    with self.store.write_lock(wait=False):
                        report = build_index(self.store, documents, model=self.model,
                                             encoder=self.encoder, scheme=DEFAULT_SCHEME)
                    index.close()
                    index = self.store.open()
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
        if missing:
            names = ", ".join(entry.id for entry in missing[:8])
            more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
            notices.append(f"{no_abstract_yet(len(missing))} ({names}{more}). "
                           "Fetch them with: paperscope ingest")
        return index, notices

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid",
               filters: Filters | None = None, update: bool = True,
               min_score: float = 0.0) -> SearchOutcome:
        """The `k` entries that best answer `query` (those scoring `min_score` or more)."""
        from .search import check_query

        query = check_query(query)
        _check_k(k, min_score)
        index, notices = self.index(update=update)
        return search_index(index, self.encoder, query, k=k, mode=mode, filters=filters,
                            notices=notices, model=self.model, min_score=min_score)

    def related(self, entry_id: str, *, k: int = 5, mode: str = "hybrid",
                filters: Filters | None = None, update: bool = True,
                min_score: float = 0.0) -> SearchOutcome:
        """The `k` entries closest to the entry `entry_id`, itself excluded (those scoring
        `min_score` or more)."""
        _check_k(k, min_score)
        entry = self.entry(entry_id)
        index, notices = self.index(update=update)
        if index.position(entry.id) is None:
            raise UsageError(f"The entry {entry.id!r} is not in the index yet (it has no abstract).",
                             "Fetch it with: paperscope ingest")
        return related_in_index(index, self.encoder, entry.id, k=k, mode=mode, filters=filters,
                                notices=notices, model=self.model, min_score=min_score)

    def status(self, verify: bool = False) -> dict:
        """How the index compares with the catalogue, and why the next build would embed
        everything again, if it would (`rebuild_reason`). Entries without text (`missing_text`)
        make it out of date: `paperscope ingest` repairs them. `metadata_changed` names the
        entries whose shown metadata (section, link, year...) changed without their text;
        `needs_summary` those searched by their titles until someone writes their summary."""
        from .index import documents_digest, meta_json
        from .settings import settings_change
        from .text import DEFAULT_SCHEME

        documents, missing = self.documents()
        problem, manifest = "", None
        try:
            manifest = self.store.read_manifest()
            indexed = self.store.indexed_hashes(manifest) if manifest else {}
            shown = self.store.indexed_meta(manifest) if manifest else {}
            if manifest and verify:
                self.store.verify()
            if manifest:  # whatever `search` would refuse, status reports
                with contextlib.closing(self.store.open()) as index:
                    collections.deque(index.all_documents(), maxlen=0)
        except PaperscopeError as err:
            indexed, shown, problem = {}, {}, err.message
        current = {d.id: d.content_hash for d in documents}
        stale = sorted(i for i in current if i in indexed and indexed[i] != current[i])
        metadata = sorted(d.id for d in documents if d.id in indexed and d.id not in stale
                          and shown.get(d.id) != meta_json(d.meta))
        new = sorted(i for i in current if i not in indexed)
        removed = sorted(i for i in indexed if i not in current)
        rebuild_reason = settings_change(manifest, self.model, DEFAULT_SCHEME) if manifest else ""
        up_to_date = manifest is not None and not (stale or metadata or new or removed or rebuild_reason) \
            and manifest.get("documents_digest") == documents_digest(documents) and not problem \
            and not missing
        return {
            "library": str(self.paths.root),
            "entries": len(self.catalogue.entries),
            "arxiv_entries": sum(1 for e in self.catalogue.entries if e.arxiv_id),
            "indexed": len(indexed),
            "stale": stale,
            "metadata_changed": metadata,
            "new": new,
            "removed": removed,
            "missing_text": [e.id for e in missing],
            "needs_summary": [e.id for e in self.catalogue.entries if e.needs_summary],
            "up_to_date": up_to_date,
            "problem": problem,
            "rebuild_reason": rebuild_reason,
            "model": (manifest or {}).get("model"),
            "dimension": (manifest or {}).get("dimension"),
            "built_at": self.store.built_at() if manifest else None,
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
               filters: Filters | None = None, min_score: float = 0.0) -> SearchOutcome:
        from .search import check_query

        query = check_query(query)
        _check_k(k, min_score)
        return search_index(self.index(), self.encoder, query, k=k, mode=mode, filters=filters,
                            min_score=min_score)

    def related(self, doc_id: str, *, k: int = 5, mode: str = "hybrid",
                filters: Filters | None = None, min_score: float = 0.0) -> SearchOutcome:
        _check_k(k, min_score)
        return related_in_index(self.index(), self.encoder, doc_id, k=k, mode=mode, filters=filters,
                                min_score=min_score)


def search_index(index: OpenIndex, encoder: Encoder | None, query: str, *, k: int, mode: str,
                 filters: Filters | None, notices: list[str] | None = None,
                 model: str | None = None, min_score: float = 0.0) -> SearchOutcome:
    """Rank the documents of an open index for a cleaned query (`model`: see `Searcher`);
    only the hits scoring `min_score` or more are kept."""
    from .search import Searcher

    allowed = (filters or Filters()).mask(index)
    hits = Searcher(index, encoder, model).search(query, k=k, mode=mode, allowed=allowed)
    notices = list(notices or [])
    if mode == "hybrid" and hits and not index.lexical.knows_any(query):
        notices.append("No word of the query occurs in any document: these are ranked by meaning "
                       "alone, and the first may not be close.")
    return _weak_and_filtered(hits, notices, min_score, "No close match")


def related_in_index(index: OpenIndex, encoder: Encoder | None, doc_id: str, *, k: int, mode: str,
                     filters: Filters | None, notices: list[str] | None = None,
                     model: str | None = None, min_score: float = 0.0) -> SearchOutcome:
    """The documents of an open index closest to the one with id `doc_id`."""
    from .search import Searcher

    position = index.position(doc_id)
    if position is None:
        raise UnknownEntryError(f"No document with id {doc_id!r} in {index.store.directory}.")
    allowed = (filters or Filters()).mask(index)
    hits = Searcher(index, encoder, model).related(position, k=k, mode=mode, allowed=allowed)
    return _weak_and_filtered(hits, list(notices or []), min_score, "No close entry")


def _weak_and_filtered(hits: list[Hit], notices: list[str], min_score: float, what: str) -> SearchOutcome:
    """A notice when even the best hit is a weak match (search.WEAK_SCORE); the hits scoring
    `min_score` or more, in their ranking's order (ranks kept)."""
    from .search import WEAK_SCORE

    if hits and max(hit.score for hit in hits) < WEAK_SCORE:
        notices.append(f"{what}: the best hit scores {max(hit.score for hit in hits):.2f} "
                       f"(under {WEAK_SCORE:.2f}, the score of a weak match).")
    kept = [hit for hit in hits if hit.score >= min_score]
    if hits and not kept:
        notices.append(f"No hit scores {min_score:g} or more.")
    return SearchOutcome(kept, notices)


def _check_k(k: int, min_score: float = 0.0) -> None:
    if k < 1:
        raise UsageError(f"-k must be at least 1 (got {k}).")
    if not 0.0 <= min_score <= 1.0:
        raise UsageError(f"--min-score must be between 0 and 1 (got {min_score:g}).")
